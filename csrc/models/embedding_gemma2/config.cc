#include "csrc/models/embedding_gemma2/config.h"

#include <cmath>

#include "csrc/core/error.h"

namespace gemmacpp::embedding_gemma2 {

using json::Reader;
using json::Value;
using nn::LayerConfig;
using nn::ModelConfig;

nn::ModelConfig config_from_hf(const Value& root, const std::string& what) {
  GC_CHECK(root.kind == Value::Kind::kObject, ValueError, what, ": not a JSON object");
  const Value* obj = &root;
  if (Reader{root, what}.string_or("model_type", "") == "embedding_gemma2") {  // text_config nested
    obj = Reader{root, what}.object("text_config");
    GC_CHECK(obj, ValueError, what, ": model_type embedding_gemma2 without a text_config object");
  }
  const Reader r{*obj, what};
  const std::string act = r.string_or("hidden_activation", "gelu_pytorch_tanh");
  GC_CHECK(act == "gelu_pytorch_tanh", NotImplementedError, what, ": hidden_activation '", act,
           "' is not supported (only gelu_pytorch_tanh)");
  GC_CHECK(!r.flag_or("attention_bias", false) || !r.get("attention_bias"), NotImplementedError, what,
           ": attention_bias is not supported");
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

  // Layer types: explicit, else 5 sliding : 1 full; the window is already a radius here.
  const int64_t radius = r.integer_or("sliding_window", 512);
  const Value* types = r.get("layer_types");
  GC_CHECK(!types || (types->kind == Value::Kind::kArray && int64_t(types->array.size()) == c.n_layers),
           ValueError, what, ": layer_types must be a list of ", c.n_layers, " strings");
  double sliding_base = 10000, full_base = 1e6;
  if (const Value* rp = r.object("rope_parameters")) {
    for (const auto& [type, base] : {std::pair<const char*, double*>{"sliding_attention", &sliding_base},
                                     {"full_attention", &full_base}}) {
      if (const Value* block = Reader{*rp, what}.object(type)) {
        const Reader br{*block, what + " rope_parameters." + type};
        const std::string rope_type = br.string_or("rope_type", "default");
        GC_CHECK(rope_type == "default", NotImplementedError, what, ": rope_type '", rope_type,
                 "' is not supported for ", type);
        *base = br.number_or("rope_theta", *base);
      }
    }
  }
  // Global layers' own shape: per_layer_config as transformers saves it ({"5": {"head_dim": ...}}),
  // or global_head_dim / num_global_key_value_heads for the full layers.
  const Value* per_layer = r.object("per_layer_config");
  const int64_t global_head_dim = r.integer_or("global_head_dim", 512);
  const int64_t global_kv = r.integer_or("num_global_key_value_heads", 1);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerConfig l;
    if (types) {
      const Value& t = types->array[size_t(i)];
      GC_CHECK(t.kind == Value::Kind::kString && (t.str == "sliding_attention" || t.str == "full_attention"),
               ValueError, what, ": layer_types[", i, "] must be sliding_attention or full_attention");
      l.local = t.str == "sliding_attention";
    } else {
      l.local = (i + 1) % 6 != 0 && i + 1 != c.n_layers;  // the last layer is always full
    }
    l.window = l.local ? radius : 0;
    l.rope_base = l.local ? sliding_base : full_base;
    if (per_layer) {
      if (const Value* pl = Reader{*per_layer, what}.object(std::to_string(i).c_str())) {
        const Reader pr{*pl, what + " per_layer_config." + std::to_string(i)};
        l.head_dim = pr.integer_or("head_dim", 0);
        l.kv_heads = pr.integer_or("num_key_value_heads", 0);
      }
    } else if (!l.local) {
      l.head_dim = global_head_dim;
      l.kv_heads = global_kv;
    }
    c.layers.push_back(l);
  }
  c.validate();
  return c;
}

NameMap name_map(const WeightFile& f) {
  const char* prefix = nullptr;
  for (const char* p : {"", "language_model.", "model.language_model.", "model."}) {
    if (f.find(std::string(p) + "embed_tokens.weight")) {
      prefix = p;
      break;
    }
  }
  GC_CHECK(prefix, ValueError, "'", f.path, "' has no embedding tensor (embed_tokens.weight): not an "
           "EmbeddingGemma 2 checkpoint?");
  std::vector<std::pair<std::string, std::string>> names = {
      {"embed.weight", "embed_tokens.weight"},
      {"per_layer_proj.weight", "ple.per_layer_model_projection.weight"},
      {"per_layer_proj_norm.weight", "ple.per_layer_projection_norm.weight"},
      {"blocks.{i}.ln1.weight", "layers.{i}.input_layernorm.weight"},
      {"blocks.{i}.attn.q_norm.weight", "layers.{i}.self_attn.q_norm.weight"},
      {"blocks.{i}.attn.k_norm.weight", "layers.{i}.self_attn.k_norm.weight"},
      {"blocks.{i}.ln1_post.weight", "layers.{i}.post_attention_layernorm.weight"},
      {"blocks.{i}.ln2.weight", "layers.{i}.pre_feedforward_layernorm.weight"},
      {"blocks.{i}.ln2_post.weight", "layers.{i}.post_feedforward_layernorm.weight"},
      {"blocks.{i}.ple.gate.weight", "layers.{i}.ple_block.per_layer_input_gate.weight"},
      {"blocks.{i}.ple.proj.weight", "layers.{i}.ple_block.per_layer_projection.weight"},
      {"blocks.{i}.ple.post_norm.weight", "layers.{i}.ple_block.post_per_layer_input_norm.weight"},
      {"blocks.{i}.layer_scalar", "layers.{i}.layer_scalar"},
      {"ln_final.weight", "norm.weight"},
      {"token_proj.weight", "embedding_projection.weight"},
  };
  for (const char* p : {"q", "k", "v", "o"}) {
    names.emplace_back(std::string("blocks.{i}.attn.") + p + ".weight", std::string("layers.{i}.self_attn.") + p + "_proj.weight");
  }
  for (const char* p : {"gate", "up", "down"}) {
    names.emplace_back(std::string("blocks.{i}.mlp.") + p + ".weight", std::string("layers.{i}.mlp.") + p + "_proj.weight");
  }
  return NameMap(prefix, std::move(names));
}

}  // namespace gemmacpp::embedding_gemma2
