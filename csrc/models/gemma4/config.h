// Gemma 4 text configurations (dense, mixture-of-experts and the E2B/E4B edge sizes): from a
// Hugging Face config.json (model_type gemma4_text, or the text_config of a gemma4 checkpoint) or
// from GGUF metadata (general.architecture gemma4, as llama.cpp writes it), and the tensor-name
// maps of both formats. The layer table (sliding and global layers, their RoPE and head shapes)
// is read the way EmbeddingGemma 2, built from the same parts, also reads it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "csrc/io/json_reader.h"
#include "csrc/io/weight_binder.h"
#include "csrc/io/weights.h"
#include "csrc/nn/config.h"

namespace gemmacpp::gemma4 {

nn::ModelConfig config_from_hf(const json::Value& root, const std::string& what);
nn::ModelConfig config_from_gguf(const WeightFile& f);
NameMap name_map(const nn::ModelConfig& c, const WeightFile& f);
// The canonical names as transformers' Gemma 4 text model stores them (below its prefix).
std::vector<std::pair<std::string, std::string>> hf_names();

// What a Gemma 4-style config leaves unsaid about its layers, where the families differ.
struct LayerDefaults {
  const char* global_rope_type;   // "proportional" (Gemma 4) or "default" (EmbeddingGemma 2)
  double global_rotary_factor;    // partial_rotary_factor of a proportional global RoPE
  int64_t global_kv_heads;        // num_global_key_value_heads when absent; 0: the model's
};
// c.layers from layer_types (default: every sliding_window_pattern-th layer, 6, and the last one global),
// rope_parameters per layer type, and the global layers' shape (per_layer_config, else
// global_head_dim / num_global_key_value_heads; the latter only with attention_k_eq_v where the
// config has that flag, as transformers reads it). window: what sliding layers get in
// LayerConfig::window. Needs c.n_layers and c.head_dim.
void read_layer_table(const json::Reader& r, const LayerDefaults& defaults, int64_t window, nn::ModelConfig& c);
// The text model's part of a newer family's config.json (Gemma 4, Gemma 3n, EmbeddingGemma 2):
// the root, or its text_config object when model_type is `multimodal_type` (the checkpoint with
// towers); ValueError when that object is missing.
const json::Value& text_config(const json::Value& root, const std::string& multimodal_type,
                               const std::string& what);
// Refuses by name what these families' readers do not build: a hidden_activation other than
// gelu_pytorch_tanh, attention biases, and (with_head: a decoder's tied head) untied heads.
void check_text_settings(const json::Reader& r, bool with_head, const std::string& what);
// KV sharing (Gemma 4, Gemma 3n): the last n_shared layers read the keys and values of the last
// earlier layer of their type (local or global); ValueError when there is none.
void share_kv(nn::ModelConfig& c, int64_t n_shared, const std::string& what);

}  // namespace gemmacpp::gemma4
