// Gemma 3n text configurations (E2B, E4B): from a Hugging Face config.json (model_type
// gemma3n_text, or the text_config of a gemma3n checkpoint, whose vision and audio towers are not
// read) or from GGUF metadata (general.architecture gemma3n, as llama.cpp writes it), and the
// tensor-name maps of both formats.
#pragma once

#include <memory>
#include <string>

#include "csrc/io/json_reader.h"
#include "csrc/io/weight_binder.h"
#include "csrc/io/weights.h"
#include "csrc/nn/config.h"

namespace gemmacpp::gemma3n {

nn::ModelConfig config_from_hf(const json::Value& root, const std::string& what);
nn::ModelConfig config_from_gguf(const WeightFile& f);
NameMap name_map(const nn::ModelConfig& c, const WeightFile& f);

// The standard normal quantile: what transformers' gaussian top-k turns a sparsity p into (and
// what llama.cpp's GGUF files store as activation_sparsity_scale).
double normal_quantile(double p);

}  // namespace gemmacpp::gemma3n
