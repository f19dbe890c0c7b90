#include "csrc/models/griffin/config.h"

#include <cmath>

#include "csrc/core/error.h"

namespace gemmacpp::griffin {

using json::Reader;
using json::Value;
using nn::LayerConfig;
using nn::ModelConfig;

// RecurrentGemma, as transformers' RecurrentGemmaConfig reads it: head_dim is always d / H, the
// block types repeat over the layers, every attention block is local, and the embedding scale is
// sqrt(d) rounded to bfloat16 (transformers keeps that normaliser in a bfloat16 buffer).
ModelConfig config_from_hf(const Value& root, const std::string& what) {
  GC_CHECK(root.kind == Value::Kind::kObject, ValueError, what, ": not a JSON object");
  const Reader r{root, what};
  ModelConfig c;
  c.family = "recurrent_gemma";
  c.vocab = r.integer_or("vocab_size", 256000);
  c.d = r.integer("hidden_size");
  c.n_layers = r.integer("num_hidden_layers");
  c.n_heads = r.integer("num_attention_heads");
  c.n_kv_heads = r.integer_or("num_key_value_heads", c.n_heads);
  c.head_dim = c.n_heads ? c.d / c.n_heads : 0;
  c.ffn = r.integer("intermediate_size") / 2;
  c.norm_eps = r.number_or("rms_norm_eps", 1e-6);
  c.final_softcap = float(r.number_or("logits_soft_cap", 30.0));
  c.query_pre_attn_scalar = double(c.head_dim);
  c.embed_scale = bf16_to_f32(f32_to_bf16(float(std::sqrt(double(c.d)))));
  c.lru_width = r.integer_or("lru_width", c.d);
  c.conv1d_width = r.integer_or("conv1d_width", 4);
  c.attn_bias = false;
  if (const Value* b = r.get("attention_bias")) c.attn_bias = b->kind == Value::Kind::kBool && b->boolean;
  if (const Value* tie = r.get("tie_word_embeddings")) {
    GC_CHECK(tie->kind != Value::Kind::kBool || tie->boolean, NotImplementedError, what,
             ": untied output heads are not supported");
  }
  // RoPE: transformers 5 writes rope_parameters, older files rope_theta and partial_rotary_factor.
  double base = r.number_or("rope_theta", 10000), partial = r.number_or("partial_rotary_factor", 0.5);
  if (const Value* rp = r.get("rope_parameters")) {
    GC_CHECK(rp->kind == Value::Kind::kObject, ValueError, what, ": rope_parameters must be an object");
    Reader rr{*rp, what + " rope_parameters"};
    const std::string type = rr.string_or("rope_type", "default");
    GC_CHECK(type == "default", NotImplementedError, what, ": rope_type '", type,
             "' is not supported by RecurrentGemma");
    base = rr.number_or("rope_theta", base);
    partial = rr.number_or("partial_rotary_factor", partial);
  }
  c.rotary_dim = int64_t(double(c.head_dim) * partial);
  GC_CHECK(c.rotary_dim >= 2 && c.rotary_dim <= c.head_dim && c.rotary_dim % 2 == 0, ValueError, what,
           ": partial_rotary_factor ", partial, " gives ", c.rotary_dim, " rotary dims of head_dim ",
           c.head_dim, "; they must be even and in [2, head_dim]");
  const int64_t window = r.integer_or("attention_window_size", 2048);
  std::vector<std::string> pattern = {"recurrent", "recurrent", "attention"};
  if (const Value* bt = r.get("block_types")) {
    GC_CHECK(bt->kind == Value::Kind::kArray && !bt->array.empty(), ValueError, what,
             ": block_types must be a non-empty list");
    pattern.clear();
    for (const Value& v : bt->array) {
      GC_CHECK(v.kind == Value::Kind::kString && (v.str == "recurrent" || v.str == "attention"),
               ValueError, what, ": block_types entries must be \"recurrent\" or \"attention\"");
      pattern.push_back(v.str);
    }
  }
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerConfig l;
    l.mixer = pattern[size_t(i) % pattern.size()] == "recurrent" ? nn::Mixer::kRecurrent : nn::Mixer::kAttention;
    l.local = l.mixer == nn::Mixer::kAttention;
    l.window = l.local ? window : 0;
    l.rope_base = base;
    c.layers.push_back(l);
  }
  c.validate();
  GC_CHECK(c.lru_width >= 1 && c.lru_width % c.n_heads == 0, ValueError, what, ": lru_width (",
           c.lru_width, ") must be a positive multiple of num_attention_heads (", c.n_heads, ")");
  GC_CHECK(c.conv1d_width >= 1, ValueError, what, ": conv1d_width must be >= 1");
  return c;
}

NameMap name_map() {
  std::vector<std::pair<std::string, std::string>> names = {
      {"embed.weight", "embed_tokens.weight"},
      {"blocks.{i}.ln1.weight", "layers.{i}.temporal_pre_norm.weight"},
      {"blocks.{i}.conv.weight", "layers.{i}.temporal_block.conv_1d.weight"},
      {"blocks.{i}.conv.bias", "layers.{i}.temporal_block.conv_1d.bias"},
      {"blocks.{i}.rglru.a_param", "layers.{i}.temporal_block.rg_lru.recurrent_param"},
      {"blocks.{i}.rglru.gate_x.weight", "layers.{i}.temporal_block.rg_lru.input_gate_weight"},
      {"blocks.{i}.rglru.gate_x.bias", "layers.{i}.temporal_block.rg_lru.input_gate_bias"},
      {"blocks.{i}.rglru.gate_a.weight", "layers.{i}.temporal_block.rg_lru.recurrent_gate_weight"},
      {"blocks.{i}.rglru.gate_a.bias", "layers.{i}.temporal_block.rg_lru.recurrent_gate_bias"},
      {"blocks.{i}.ln2.weight", "layers.{i}.channel_pre_norm.weight"},
      {"ln_final.weight", "final_norm.weight"},
  };
  // Projections with weight and bias under the same module.
  const std::pair<const char*, const char*> modules[] = {
      {"linear_x", "temporal_block.linear_x"},   {"linear_y", "temporal_block.linear_y"},
      {"linear_out", "temporal_block.linear_out"}, {"attn.q", "temporal_block.q_proj"},
      {"attn.k", "temporal_block.k_proj"},       {"attn.v", "temporal_block.v_proj"},
      {"attn.o", "temporal_block.o_proj"},       {"mlp.gate", "mlp_block.gate_proj"},
      {"mlp.up", "mlp_block.up_proj"},           {"mlp.down", "mlp_block.down_proj"},
  };
  for (const auto& [ours, theirs] : modules) {
    for (const char* param : {".weight", ".bias"}) {
      names.emplace_back(std::string("blocks.{i}.") + ours + param, std::string("layers.{i}.") + theirs + param);
    }
  }
  return NameMap("model.", std::move(names));
}

}  // namespace gemmacpp::griffin
