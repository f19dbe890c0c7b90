// Gemma 3n text configurations (E2B, E4B): from a Hugging Face config.json (model_type
// gemma3n_text, or the text_config of a gemma3n checkpoint, whose vision and audio towers are not
// read) or from GGUF metadata (general.architecture gemma3n, as llama.cpp writes it), and the
// tensor-name maps of both formats.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "csrc/io/json_reader.h"
#include "csrc/io/weight_binder.h"
#include "csrc/io/weights.h"
#include "csrc/nn/config.h"

namespace gemmacpp::gemma3n {

nn::ModelConfig config_from_hf(const json::Value& root, const std::string& what);
nn::ModelConfig config_from_gguf(const WeightFile& f);
NameMap name_map(const nn::ModelConfig& c, const WeightFile& f);

// A MatFormer sub-model of a checkpoint (E4B holds E2B-like ones): layers to skip, and the MLP
// width of each layer kept (one for all, or one per kept layer; empty: as stored).
struct MatFormer {
  std::vector<int64_t> ffn;
  std::vector<int64_t> skip_layers;
  bool empty() const { return ffn.empty() && skip_layers.empty(); }
};
// The config of that sub-model: the kept layers in order, each reading its stored layer's weights
// (the first `ffn` rows / columns of its MLP) and per-layer input slice; the layers that shared
// keys and values in the checkpoint and are kept share them again, from the last kept layer of
// their type before them. ValueError naming a bad width or layer.
nn::ModelConfig slice(const nn::ModelConfig& c, const MatFormer& m);

// The standard normal quantile: what transformers' gaussian top-k turns a sparsity p into (and
// what llama.cpp's GGUF files store as activation_sparsity_scale).
double normal_quantile(double p);

}  // namespace gemmacpp::gemma3n
