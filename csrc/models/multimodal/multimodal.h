// Gemma 3 with images (Gemma3ForConditionalGeneration) and PaliGemma 1/2: one checkpoint holding a
// SigLIP tower, a projector and a Gemma text model, loaded as three parts that share the mapping.
// The token layout and masks are built by the caller (python/gemmacpp/model.py), which passes the
// projected soft tokens and bidirectional spans to GemmaModel::forward.
#pragma once

#include <memory>
#include <string>

#include "csrc/models/gemma/gemma.h"
#include "csrc/models/siglip/siglip.h"

namespace gemmacpp {

struct MultimodalModel {
  std::string kind;  // "gemma3" or "paligemma" (config.json's model_type)
  std::shared_ptr<GemmaModel> text;
  std::shared_ptr<SiglipModel> vision;
  std::shared_ptr<VisionProjector> projector;
};

// A HF checkpoint folder (or a .safetensors file next to its config.json) of model_type gemma3
// (with a vision_config) or paligemma; tokens_per_image is Gemma 3's mm_tokens_per_image.
MultimodalModel load_multimodal(const std::string& path, int64_t tokens_per_image);

}  // namespace gemmacpp
