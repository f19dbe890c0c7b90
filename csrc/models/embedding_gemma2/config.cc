#include "csrc/models/embedding_gemma2/config.h"

#include <cmath>

#include "csrc/core/error.h"
#include "csrc/models/gemma4/config.h"

namespace gemmacpp::embedding_gemma2 {

using json::Reader;
using json::Value;
using nn::ModelConfig;

nn::ModelConfig config_from_hf(const Value& root, const std::string& what) {
  const Reader r{gemma4::text_config(root, "embedding_gemma2", what), what};
  gemma4::check_text_settings(r, /*with_head=*/false, what);  // an encoder: no output head
  ModelConfig c;  // defaults: transformers' EmbeddingGemma2TextConfig
  c.family = "embedding_gemma2";
  c.vocab = r.integer_or("vocab_size", 262144);
  c.d = r.integer_or("hidden_size", 512);
  c.n_layers = r.integer_or("num_hidden_layers", 24);
  c.n_heads = r.integer_or("num_attention_heads", 4);
  c.n_kv_heads = r.integer_or("num_key_value_heads", 2);
  c.head_dim = r.integer_or("head_dim", 256);
  c.ffn = r.integer_or("intermediate_size", 2048);
  c.norm_eps = r.number_or("rms_norm_eps", 1e-6);
  c.query_pre_attn_scalar = 1;  // attention scale 1: the q/k norms set the scores' size
  c.qk_norm = c.v_norm = true;
  c.sandwich_norms = true;
  c.norm_unit_offset = false;
  c.embed_scale = float(std::sqrt(double(c.d)));
  c.bidirectional = true;
  c.per_layer_input = r.integer_or("hidden_size_per_layer_input", 512);
  c.layer_scalar = true;
  c.token_projection = r.integer_or("embedding_dim", 768);

  // The window is already a radius here; the global layers' RoPE is the default one.
  gemma4::read_layer_table(r, {"default", 1.0, 1}, r.integer_or("sliding_window", 512), c);
  c.validate();
  return c;
}

NameMap name_map(const WeightFile& f) {
  const std::string prefix =
      text_model_prefix(f, {"", "language_model.", "model.language_model.", "model."}, "an EmbeddingGemma 2");
  // Gemma 4's names, with the per-layer gate below ple_block and the per-token projection.
  std::vector<std::pair<std::string, std::string>> names = {
      {"per_layer_proj.weight", "ple.per_layer_model_projection.weight"},
      {"per_layer_proj_norm.weight", "ple.per_layer_projection_norm.weight"},
      {"blocks.{i}.ple.gate.weight", "layers.{i}.ple_block.per_layer_input_gate.weight"},
      {"blocks.{i}.ple.proj.weight", "layers.{i}.ple_block.per_layer_projection.weight"},
      {"blocks.{i}.ple.post_norm.weight", "layers.{i}.ple_block.post_per_layer_input_norm.weight"},
      {"token_proj.weight", "embedding_projection.weight"},
  };
  for (auto& entry : gemma4::hf_names()) names.push_back(std::move(entry));  // the first match wins
  return NameMap(prefix, std::move(names));
}

}  // namespace gemmacpp::embedding_gemma2
