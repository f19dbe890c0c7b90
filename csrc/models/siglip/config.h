// SigLIP vision tower configurations from a Hugging Face config.json: model_type
// siglip_vision_model itself, or the vision_config of a gemma3 or paligemma checkpoint (with HF's
// SiglipVisionConfig defaults for fields left out).
#pragma once

#include <string>

#include "csrc/io/json_reader.h"
#include "csrc/nn/config.h"

namespace gemmacpp::siglip {

nn::VisionConfig config_from_hf(const json::Value& root, const std::string& what);

}  // namespace gemmacpp::siglip
