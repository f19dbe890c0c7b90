#include "csrc/models/gemma4/config.h"

#include <cmath>
#include <utility>
#include <vector>

#include "csrc/core/dtype.h"
#include "csrc/core/error.h"
#include "csrc/io/gguf_keys.h"
#include "csrc/models/gemma/config.h"

namespace gemmacpp::gemma4 {

using json::Reader;
using json::Value;
using nn::LayerConfig;
using nn::ModelConfig;

namespace {

// The RoPE of one layer type: base, linear scale and, for "proportional", how many of the head's
// frequency pairs turn (transformers: int(partial_rotary_factor * head_dim // 2)).
struct Rope {
  std::string type;
  double base = 10000, scale = 1, rotary_factor = 1;
};

Rope read_rope(const Value* block, Rope rope, const std::string& what) {
  if (!block) return rope;
  const Reader r{*block, what};
  rope.type = r.string_or("rope_type", rope.type);
  GC_CHECK(rope.type == "default" || rope.type == "proportional", NotImplementedError, what, ": rope_type '",
           rope.type, "' is not supported (default or proportional)");
  rope.base = r.number_or("rope_theta", rope.base);
  rope.scale = r.number_or("factor", 1.0);
  rope.rotary_factor = rope.type == "proportional" ? r.number_or("partial_rotary_factor", 1.0) : 1.0;
  GC_CHECK(rope.rotary_factor >= 0 && rope.rotary_factor <= 1, ValueError, what,
           ": partial_rotary_factor must be in [0, 1], got ", rope.rotary_factor);
  return rope;
}

// Gemma 4's double-wide MLP: the KV-sharing layers' MLPs are twice as wide.
void double_shared_mlps(ModelConfig& c) {
  for (LayerConfig& l : c.layers) {
    if (l.kv_source >= 0) l.ffn = 2 * c.ffn;
  }
}

}  // namespace

// Layers from first_shared on read the keys and values of the last earlier layer of their type.
void share_kv(ModelConfig& c, int64_t n_shared, const std::string& what) {
  GC_CHECK(n_shared >= 0 && n_shared < c.n_layers, ValueError, what, ": num_kv_shared_layers (", n_shared,
           ") must be in [0, num_hidden_layers = ", c.n_layers, ")");
  const int64_t first_shared = c.n_layers - n_shared;
  for (int64_t i = first_shared; i < c.n_layers; ++i) {
    LayerConfig& l = c.layers[size_t(i)];
    for (int64_t j = first_shared - 1; j >= 0 && l.kv_source < 0; --j) {
      if (c.layers[size_t(j)].local == l.local) l.kv_source = j;
    }
    GC_CHECK(l.kv_source >= 0, ValueError, what, ": layer ", i, " shares the keys and values of an earlier ",
             l.local ? "sliding" : "full", " layer, but the first ", first_shared, " layers have none");
  }
}

void read_layer_table(const Reader& r, const LayerDefaults& defaults, int64_t window, ModelConfig& c) {
  const std::string& what = r.what;
  const Value* types = r.get("layer_types");
  GC_CHECK(!types || (types->kind == Value::Kind::kArray && int64_t(types->array.size()) == c.n_layers),
           ValueError, what, ": layer_types must be a list of ", c.n_layers, " strings");
  Rope sliding{"default", 10000, 1, 1}, full{defaults.global_rope_type, 1e6, 1, defaults.global_rotary_factor};
  if (const Value* rp = r.object("rope_parameters")) {
    const Reader pr{*rp, what};
    sliding = read_rope(pr.object("sliding_attention"), sliding, what + " rope_parameters.sliding_attention");
    full = read_rope(pr.object("full_attention"), full, what + " rope_parameters.full_attention");
  }
  const Value* per_layer = r.object("per_layer_config");
  const int64_t global_head_dim = r.integer_or("global_head_dim", 512);
  const int64_t pattern = r.integer_or("sliding_window_pattern", 6);
  GC_CHECK(pattern >= 1, ValueError, what, ": sliding_window_pattern must be >= 1");
  const bool global_kv_override = !r.get("attention_k_eq_v") || r.flag_or("attention_k_eq_v", false);
  const int64_t global_kv = global_kv_override ? r.integer_or("num_global_key_value_heads", defaults.global_kv_heads) : 0;
  c.layers.clear();
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerConfig l;
    if (types) {
      const Value& t = types->array[size_t(i)];
      GC_CHECK(t.kind == Value::Kind::kString && (t.str == "sliding_attention" || t.str == "full_attention"),
               ValueError, what, ": layer_types[", i, "] must be sliding_attention or full_attention");
      l.local = t.str == "sliding_attention";
    } else {
      l.local = (i + 1) % pattern != 0;
    }
    if (i + 1 == c.n_layers) l.local = false;  // transformers forces the last layer global
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
    const Rope& rope = l.local ? sliding : full;
    l.window = l.local ? window : 0;
    l.rope_base = rope.base;
    l.rope_scale = rope.scale;
    if (rope.type == "proportional") {
      const int64_t hd = l.head_dim ? l.head_dim : c.head_dim;
      l.rotated_pairs = int64_t(std::floor(rope.rotary_factor * double(hd) / 2));
    }
    c.layers.push_back(l);
  }
}

const Value& text_config(const Value& root, const std::string& multimodal_type,
                         const std::string& what) {
  GC_CHECK(root.kind == Value::Kind::kObject, ValueError, what, ": not a JSON object");
  const Reader top{root, what};
  if (top.string_or("model_type", "") != multimodal_type) return root;
  const Value* text = top.object("text_config");
  GC_CHECK(text, ValueError, what, ": model_type ", multimodal_type, " without a text_config object");
  return *text;
}

void check_text_settings(const Reader& r, bool with_head, const std::string& what) {
  const std::string act = r.string_or("hidden_activation", "gelu_pytorch_tanh");
  GC_CHECK(act == "gelu_pytorch_tanh", NotImplementedError, what, ": hidden_activation '", act,
           "' is not supported (only gelu_pytorch_tanh)");
  GC_CHECK(!r.get("attention_bias") || !r.flag_or("attention_bias", false), NotImplementedError, what,
           ": attention_bias is not supported");
  GC_CHECK(!with_head || r.flag_or("tie_word_embeddings", true), NotImplementedError, what,
           ": untied output heads (tie_word_embeddings false) are not supported");
}

ModelConfig config_from_hf(const Value& root, const std::string& what) {
  const Reader r{text_config(root, "gemma4", what), what};  // gemma4: the multimodal checkpoint
  check_text_settings(r, /*with_head=*/true, what);
  const std::string bidir = r.string_or("use_bidirectional_attention", "");
  // "vision" only changes image tokens' masks; a text forward is causal either way.
  GC_CHECK(bidir.empty() || bidir == "vision", NotImplementedError, what, ": use_bidirectional_attention '",
           bidir, "' is not supported (a decoder generates causally)");

  ModelConfig c;  // defaults: transformers' Gemma4TextConfig
  c.family = "gemma4";
  c.vocab = r.integer_or("vocab_size", 262144);
  c.d = r.integer_or("hidden_size", 2304);
  c.n_layers = r.integer_or("num_hidden_layers", 30);
  c.n_heads = r.integer_or("num_attention_heads", 8);
  c.n_kv_heads = r.integer_or("num_key_value_heads", 4);
  c.head_dim = r.integer_or("head_dim", 256);
  c.ffn = r.integer_or("intermediate_size", 9216);
  c.norm_eps = r.number_or("rms_norm_eps", 1e-6);
  c.final_softcap = float(r.number_or("final_logit_softcapping", 0));
  c.query_pre_attn_scalar = 1;  // attention scale 1: the q/k norms set the scores' size
  c.qk_norm = c.v_norm = true;
  c.sandwich_norms = true;
  c.norm_unit_offset = false;  // weights used as stored (initialised to ones)
  c.embed_scale = float(std::sqrt(double(c.d)));
  c.layer_scalar = true;
  c.per_layer_input = r.integer_or("hidden_size_per_layer_input", 256);
  if (c.per_layer_input > 0) {
    c.per_layer_vocab = r.integer_or("vocab_size_per_layer_input", 262144);
    c.per_layer_embed_scale = float(std::sqrt(double(c.per_layer_input)));
  }
  if (r.flag_or("enable_moe_block", false) && r.get("enable_moe_block")) {
    c.n_experts = r.integer("num_experts");
    c.top_k = r.integer("top_k_experts");
    c.expert_ffn = r.integer("moe_intermediate_size");
  }
  read_layer_table(r, {"proportional", 0.25, 0}, r.integer_or("sliding_window", 512), c);
  const bool k_eq_v = r.get("attention_k_eq_v") && r.flag_or("attention_k_eq_v", false);
  for (LayerConfig& l : c.layers) l.k_eq_v = k_eq_v && !l.local;
  share_kv(c, r.integer_or("num_kv_shared_layers", 0), what);
  for (LayerConfig& l : c.layers) {
    if (l.kv_source >= 0) l.k_eq_v = false;  // it has no projections of its own
  }
  if (r.get("use_double_wide_mlp") && r.flag_or("use_double_wide_mlp", false)) double_shared_mlps(c);
  c.validate();
  return c;
}

ModelConfig config_from_gguf(const WeightFile& f) {
  const std::string what = "'" + f.path + "'";
  const std::string arch = "gemma4";
  const GgufKeys keys{f, arch};

  ModelConfig c;
  c.family = "gemma4";
  c.d = keys.integer("embedding_length");
  c.n_layers = keys.integer("block_count");
  GC_CHECK(c.n_layers >= 1, ValueError, what, ": ", arch, ".block_count must be >= 1");
  // Per-layer arrays (llama.cpp writes feed_forward_length and head_count_kv as one entry per
  // layer where they vary) or one value for all.
  auto per_layer = [&](const std::string& key, bool required, int64_t dflt) {
    std::vector<int64_t> out(size_t(c.n_layers), dflt);
    const MetaValue* v = keys.get(key);
    GC_CHECK(v || !required, ValueError, what, ": missing ", arch, ".", key);
    if (!v) return out;
    if (v->type == MetaValue::Type::kArray) {
      GC_CHECK(int64_t(v->count) == c.n_layers, ValueError, what, ": ", arch, ".", key, " has ", v->count,
               " entries for ", c.n_layers, " layers");
      for (int64_t i = 0; i < c.n_layers; ++i) out[size_t(i)] = v->element(uint64_t(i)).as_int();
    } else {
      out.assign(size_t(c.n_layers), v->as_int());
    }
    return out;
  };
  c.n_heads = keys.integer("attention.head_count");
  const std::vector<int64_t> kv_heads = per_layer("attention.head_count_kv", false, c.n_heads);
  const std::vector<int64_t> ffn = per_layer("feed_forward_length", true, 0);
  const int64_t global_head_dim = keys.integer("attention.key_length");
  c.head_dim = keys.integer_or("attention.key_length_swa", global_head_dim);
  c.norm_eps = keys.number_or("attention.layer_norm_rms_epsilon", 1e-6);
  // Every released Gemma 4 softcaps its logits at 30; llama.cpp's converter may leave it out.
  c.final_softcap = float(keys.number_or("final_logit_softcapping", 30.0));
  c.query_pre_attn_scalar = 1;
  c.qk_norm = c.v_norm = true;
  c.sandwich_norms = true;
  c.norm_unit_offset = false;  // llama.cpp shifts no Gemma 4 norm
  c.embed_scale = float(std::sqrt(double(c.d)));
  c.layer_scalar = true;
  const WeightTensor* emb = f.find("token_embd.weight");
  GC_CHECK(emb && emb->shape.size() == 2, ValueError, what, ": no 2-d token_embd.weight");
  c.vocab = emb->shape[0];
  GC_CHECK(!f.find("output.weight"), NotImplementedError, what,
           ": untied output heads (output.weight) are not supported");
  c.per_layer_input = keys.integer_or("embedding_length_per_layer_input", 0);
  if (c.per_layer_input > 0) {
    const WeightTensor* ple = f.find("per_layer_token_embd.weight");
    GC_CHECK(ple && ple->shape.size() == 2, ValueError, what, ": per-layer inputs of width ", c.per_layer_input,
             " without a 2-d per_layer_token_embd.weight");
    c.per_layer_vocab = ple->shape[0];
    c.per_layer_embed_scale = float(std::sqrt(double(c.per_layer_input)));
  }
  if (f.find("blk.0.ffn_gate_up_exps.weight")) {
    c.n_experts = keys.integer("expert_count");
    c.top_k = keys.integer("expert_used_count");
    c.expert_ffn = keys.integer("expert_feed_forward_length");
  }
  // The first layer's MLP width is the model's; wider ones (double-wide MLPs) are per layer.
  c.ffn = ffn[0];

  // Global layers' "proportional" RoPE is stored as llama.cpp's rope_freqs factors: 1 for a pair
  // that turns, 1e30 (a frequency of 0) for one that does not.
  int64_t rotated_pairs = -1;
  if (const WeightTensor* rf = f.find("rope_freqs.weight")) {
    GC_CHECK(rf->dtype == DType::kF32 && rf->shape.size() == 1 && rf->shape[0] == global_head_dim / 2,
             ValueError, what, ": rope_freqs.weight must be float32 [", global_head_dim / 2, "], got ",
             rf->type_name(), " ", shape_string(rf->shape));
    const float* factors = reinterpret_cast<const float*>(rf->data);
    rotated_pairs = 0;
    while (rotated_pairs < rf->shape[0] && factors[rotated_pairs] == 1.0f) ++rotated_pairs;
    for (int64_t i = rotated_pairs; i < rf->shape[0]; ++i) {
      GC_CHECK(factors[i] >= 1e20f, NotImplementedError, what, ": rope_freqs.weight[", i, "] = ", factors[i],
               ": only factors of 1 (turn) followed by ones of 1e30 (stay) are supported");
    }
  }
  const double global_base = keys.number_or("rope.freq_base", 1e6), local_base = keys.number_or("rope.freq_base_swa", 10000);
  const int64_t window = keys.integer("attention.sliding_window");
  const MetaValue* pat = keys.get("attention.sliding_window_pattern");
  GC_CHECK(pat && pat->type == MetaValue::Type::kArray && int64_t(pat->count) == c.n_layers, ValueError, what,
           ": ", arch, ".attention.sliding_window_pattern must be one bool per layer");
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerConfig l;
    l.local = pat->element(uint64_t(i)).as_int() != 0;
    l.window = l.local ? window : 0;
    l.rope_base = l.local ? local_base : global_base;
    if (!l.local) {
      l.head_dim = global_head_dim;
      l.rotated_pairs = rotated_pairs;
    }
    if (ffn[size_t(i)] != c.ffn) l.ffn = ffn[size_t(i)];
    c.layers.push_back(l);
  }
  // The model's kv heads are the first sliding layer's (llama.cpp: num_key_value_heads).
  c.n_kv_heads = kv_heads[0];
  for (int64_t i = 0; i < c.n_layers; ++i) {
    if (c.layers[size_t(i)].local) {
      c.n_kv_heads = kv_heads[size_t(i)];
      break;
    }
  }
  for (int64_t i = 0; i < c.n_layers; ++i) {
    c.layers[size_t(i)].kv_heads = kv_heads[size_t(i)] != c.n_kv_heads ? kv_heads[size_t(i)] : 0;
  }
  share_kv(c, keys.integer_or("attention.shared_kv_layers", 0), what);
  // Keys as values: a global layer with keys of its own but no attn_v tensor.
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerConfig& l = c.layers[size_t(i)];
    l.k_eq_v = !l.local && l.kv_source < 0 && !f.find("blk." + std::to_string(i) + ".attn_v.weight");
  }
  c.validate();
  return c;
}

std::vector<std::pair<std::string, std::string>> hf_names() {
  std::vector<std::pair<std::string, std::string>> names = {
      {"embed.weight", "embed_tokens.weight"},
      {"per_layer_embed.weight", "embed_tokens_per_layer.weight"},
      {"per_layer_proj.weight", "per_layer_model_projection.weight"},
      {"per_layer_proj_norm.weight", "per_layer_projection_norm.weight"},
      {"blocks.{i}.ln1.weight", "layers.{i}.input_layernorm.weight"},
      {"blocks.{i}.attn.q_norm.weight", "layers.{i}.self_attn.q_norm.weight"},
      {"blocks.{i}.attn.k_norm.weight", "layers.{i}.self_attn.k_norm.weight"},
      {"blocks.{i}.ln1_post.weight", "layers.{i}.post_attention_layernorm.weight"},
      {"blocks.{i}.ln2.weight", "layers.{i}.pre_feedforward_layernorm.weight"},
      {"blocks.{i}.ln2_post.weight", "layers.{i}.post_feedforward_layernorm.weight"},
      {"blocks.{i}.mlp.ln_post.weight", "layers.{i}.post_feedforward_layernorm_1.weight"},
      {"blocks.{i}.moe.ln_pre.weight", "layers.{i}.pre_feedforward_layernorm_2.weight"},
      {"blocks.{i}.moe.ln_post.weight", "layers.{i}.post_feedforward_layernorm_2.weight"},
      {"blocks.{i}.moe.router.weight", "layers.{i}.router.proj.weight"},
      {"blocks.{i}.moe.router_scale", "layers.{i}.router.scale"},
      {"blocks.{i}.moe.expert_scale", "layers.{i}.router.per_expert_scale"},
      {"blocks.{i}.moe.gate_up", "layers.{i}.experts.gate_up_proj"},
      {"blocks.{i}.moe.down", "layers.{i}.experts.down_proj"},
      {"blocks.{i}.ple.gate.weight", "layers.{i}.per_layer_input_gate.weight"},
      {"blocks.{i}.ple.proj.weight", "layers.{i}.per_layer_projection.weight"},
      {"blocks.{i}.ple.post_norm.weight", "layers.{i}.post_per_layer_input_norm.weight"},
      {"blocks.{i}.layer_scalar", "layers.{i}.layer_scalar"},
      {"ln_final.weight", "norm.weight"},
  };
  for (const char* p : {"q", "k", "v", "o"}) {
    names.emplace_back(std::string("blocks.{i}.attn.") + p + ".weight", std::string("layers.{i}.self_attn.") + p + "_proj.weight");
  }
  for (const char* p : {"gate", "up", "down"}) {
    names.emplace_back(std::string("blocks.{i}.mlp.") + p + ".weight", std::string("layers.{i}.mlp.") + p + "_proj.weight");
  }
  return names;
}

NameMap name_map(const ModelConfig& c, const WeightFile& f) {
  (void)c;
  if (f.format == "gguf") {  // llama.cpp's names: Gemma's, and those of the newer blocks
    std::vector<std::pair<std::string, std::string>> names = gemma::gguf_names();
    names.insert(names.end(), {
        {"per_layer_embed.weight", "per_layer_token_embd.weight"},
        {"per_layer_proj.weight", "per_layer_model_proj.weight"},
        {"per_layer_proj_norm.weight", "per_layer_proj_norm.weight"},
        {"blocks.{i}.mlp.ln_post.weight", "blk.{i}.post_ffw_norm_1.weight"},
        {"blocks.{i}.moe.ln_pre.weight", "blk.{i}.pre_ffw_norm_2.weight"},
        {"blocks.{i}.moe.ln_post.weight", "blk.{i}.post_ffw_norm_2.weight"},
        {"blocks.{i}.moe.router.weight", "blk.{i}.ffn_gate_inp.weight"},
        {"blocks.{i}.moe.router_scale", "blk.{i}.ffn_gate_inp.scale"},
        {"blocks.{i}.moe.expert_scale", "blk.{i}.ffn_down_exps.scale"},
        {"blocks.{i}.moe.gate_up", "blk.{i}.ffn_gate_up_exps.weight"},
        {"blocks.{i}.moe.down", "blk.{i}.ffn_down_exps.weight"},
        {"blocks.{i}.ple.gate.weight", "blk.{i}.inp_gate.weight"},
        {"blocks.{i}.ple.proj.weight", "blk.{i}.proj.weight"},
        {"blocks.{i}.ple.post_norm.weight", "blk.{i}.post_norm.weight"},
        {"blocks.{i}.layer_scalar", "blk.{i}.layer_output_scale.weight"},
    });
    return NameMap("", std::move(names));
  }
  // Gemma4ForCausalLM saves under "model."; the multimodal Gemma4ForConditionalGeneration under
  // "model.language_model."; a bare Gemma4TextModel at the top.
  return NameMap(text_model_prefix(f, {"model.", "model.language_model.", "language_model.model.", ""}, "a Gemma 4"),
                 hf_names());
}

}  // namespace gemmacpp::gemma4
