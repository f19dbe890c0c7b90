// Gemma 3 with images (Gemma3ForConditionalGeneration) and PaliGemma 1/2: one checkpoint holding a
// SigLIP tower, a projector and a Gemma text model, loaded as three parts over one mapping. The
// token layout and masks are built by the caller (python/gemmacpp/vision/image_inputs.py), which
// passes the projected soft tokens and bidirectional spans to the text model's forward.
#pragma once

#include <memory>
#include <string>

#include "csrc/io/json_reader.h"
#include "csrc/models/siglip/projector.h"
#include "csrc/models/siglip/siglip.h"
#include "csrc/nn/text_model.h"

namespace gemmacpp::multimodal {

struct Parts {
  std::string kind;  // "gemma3" or "paligemma" (config.json's model_type)
  std::shared_ptr<nn::TextModel> text;
  std::shared_ptr<siglip::VisionTower> vision;
  std::shared_ptr<siglip::Projector> projector;
};

// A HF checkpoint folder (or a .safetensors file next to its config.json) whose parsed
// config.json is `config`: model_type gemma3 (with a vision_config) or paligemma.
Parts load(const std::string& path, const json::Value& config, const std::string& what);

}  // namespace gemmacpp::multimodal
