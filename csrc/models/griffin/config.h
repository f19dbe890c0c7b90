// RecurrentGemma (Griffin) configurations from a Hugging Face config.json (model_type
// recurrent_gemma), and the tensor-name map of its checkpoints.
#pragma once

#include <string>

#include "csrc/io/json_reader.h"
#include "csrc/io/weight_binder.h"
#include "csrc/nn/config.h"

namespace gemmacpp::griffin {

nn::ModelConfig config_from_hf(const json::Value& root, const std::string& what);
NameMap name_map();

}  // namespace gemmacpp::griffin
