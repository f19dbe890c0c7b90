#include "csrc/models/gemma/config.h"

#include <cmath>

#include "csrc/core/error.h"
#include "csrc/io/gguf_keys.h"

namespace gemmacpp::gemma {

using json::Reader;
using json::Value;
using nn::LayerConfig;
using nn::ModelConfig;

namespace {

// A RoPE parameter block ({"rope_type": "default"|"linear", "rope_theta": ..., "factor": ...}):
// fills base (when given) and scale.
void read_rope(const Value& block, const std::string& what, double* base, double* scale) {
  GC_CHECK(block.kind == Value::Kind::kObject, ValueError, what, " must be an object");
  Reader r{block, what};
  std::string type = r.string_or("rope_type", r.string_or("type", "default"));
  *base = r.number_or("rope_theta", *base);
  if (type == "linear") {
    *scale = r.number_or("factor", 1.0);
  } else {
    GC_CHECK(type == "default", NotImplementedError, what, ": rope_type '", type,
             "' is not supported (only default and linear)");
  }
}

}  // namespace

ModelConfig config_from_hf(const Value& root, const std::string& what) {
  GC_CHECK(root.kind == Value::Kind::kObject, ValueError, what, ": not a JSON object");
  const Value* obj = &root;
  std::string type = Reader{root, what}.string_or("model_type", "");
  if (type == "paligemma") {  // PaliGemma (Gemma 1) and PaliGemma 2 (Gemma 2): nested text config
    obj = root.get("text_config");
    GC_CHECK(obj && obj->kind == Value::Kind::kObject, ValueError, what,
             ": model_type paligemma without a text_config object");
    type = Reader{*obj, what}.string_or("model_type", "gemma");
  } else if (type == "gemma3") {  // multimodal: the text model's config is nested
    obj = root.get("text_config");
    GC_CHECK(obj && obj->kind == Value::Kind::kObject, ValueError, what,
             ": model_type gemma3 without a text_config object");
    type = "gemma3_text";
  }
  GC_CHECK(type == "gemma" || type == "gemma2" || type == "gemma3_text", NotImplementedError, what,
           ": model_type '", type, "' is not a Gemma 1/2/3 text model");
  Reader r{*obj, what};

  ModelConfig c;
  c.family = type == "gemma3_text" ? "gemma3" : type;
  const bool g1 = c.family == "gemma", g3 = c.family == "gemma3";
  // Defaults where HF's config classes have one that a checkpoint may leave out.
  c.vocab = r.integer_or("vocab_size", g3 ? 262208 : 256000);
  c.d = r.integer("hidden_size");
  c.n_layers = r.integer("num_hidden_layers");
  c.n_heads = r.integer("num_attention_heads");
  c.n_kv_heads = r.integer_or("num_key_value_heads", c.n_heads);
  c.head_dim = r.integer_or("head_dim", c.n_heads ? c.d / c.n_heads : 0);
  c.ffn = r.integer("intermediate_size");
  c.norm_eps = r.number_or("rms_norm_eps", 1e-6);
  c.attn_softcap = float(r.number_or("attn_logit_softcapping", 0));
  c.final_softcap = float(r.number_or("final_logit_softcapping", 0));
  c.query_pre_attn_scalar = g1 ? double(c.head_dim) : r.number_or("query_pre_attn_scalar", 256);
  c.qk_norm = g3;
  c.sandwich_norms = !g1;
  c.embed_scale = float(std::sqrt(double(c.d)));
  c.tied_head = true;
  if (const Value* tie = r.get("tie_word_embeddings"))
    c.tied_head = tie->kind != Value::Kind::kBool || tie->boolean;
  GC_CHECK(c.tied_head, NotImplementedError, what, ": untied output heads are not supported");

  // RoPE: global and local bases and scales. Newer files (transformers 5) hold rope_parameters,
  // either one block or one per layer type; older ones rope_theta, rope_local_base_freq and
  // rope_scaling (which applies to global layers only in Gemma 3).
  double g_base = r.number_or("rope_theta", g3 ? 1e6 : 10000), g_scale = 1;
  double l_base = g3 ? r.number_or("rope_local_base_freq", 10000) : g_base, l_scale = 1;
  if (const Value* rs = r.get("rope_scaling")) read_rope(*rs, what + " rope_scaling", &g_base, &g_scale);
  if (const Value* rp = r.get("rope_parameters")) {
    const Value* full = rp->kind == Value::Kind::kObject ? rp->get("full_attention") : nullptr;
    const Value* sliding = rp->kind == Value::Kind::kObject ? rp->get("sliding_attention") : nullptr;
    if (full || sliding) {
      if (full) read_rope(*full, what + " rope_parameters.full_attention", &g_base, &g_scale);
      if (sliding) read_rope(*sliding, what + " rope_parameters.sliding_attention", &l_base, &l_scale);
    } else {
      read_rope(*rp, what + " rope_parameters", &g_base, &g_scale);
      l_base = g_base;
      l_scale = g_scale;
    }
  }

  // Layer types: explicit, else the family's pattern (Gemma 2 alternates starting local; Gemma 3
  // has sliding_window_pattern - 1 local layers then one global).
  int64_t window = g1 ? 0 : r.integer_or("sliding_window", 4096);
  // EmbeddingGemma: a Gemma 3 text model with bidirectional attention, where a sliding layer sees
  // the keys with |q - k| < W / 2 + 1 (transformers' Gemma3TextConfig halves W for it): a radius of
  // W / 2. (PaliGemma's text configs set the flag too, for their prefix: that mask is the caller's
  // bidirectional spans, and the model stays causal.)
  c.bidirectional = obj == &root && type == "gemma3_text" && r.flag_or("use_bidirectional_attention", false);
  if (c.bidirectional) window /= 2;
  int64_t pattern = r.integer_or("sliding_window_pattern", r.integer_or("_sliding_window_pattern", 6));
  const Value* types = r.get("layer_types");
  if (types) {
    GC_CHECK(types->kind == Value::Kind::kArray && int64_t(types->array.size()) == c.n_layers,
             ValueError, what, ": layer_types must be a list of ", c.n_layers, " strings");
  }
  for (int64_t i = 0; i < c.n_layers; ++i) {
    bool local;
    if (types) {
      const Value& t = types->array[size_t(i)];
      GC_CHECK(t.kind == Value::Kind::kString &&
                   (t.str == "sliding_attention" || t.str == "full_attention"),
               ValueError, what, ": layer_types[", i, "] must be sliding_attention or full_attention");
      local = t.str == "sliding_attention";
    } else if (g1) {
      local = false;
    } else if (g3) {
      GC_CHECK(pattern >= 1, ValueError, what, ": sliding_window_pattern must be >= 1");
      local = (i + 1) % pattern != 0;
    } else {
      local = (i + 1) % 2 != 0;
    }
    GC_CHECK(!local || !g1, ValueError, what, ": Gemma 1 has no sliding-window layers");
    LayerConfig l;
    l.local = local;
    l.window = local ? window : 0;
    l.rope_base = local ? l_base : g_base;
    l.rope_scale = local ? l_scale : g_scale;
    c.layers.push_back(l);
  }
  c.validate();
  return c;
}

ModelConfig config_from_gguf(const WeightFile& f) {
  const std::string what = "'" + f.path + "'";
  const MetaValue* archv = f.meta("general.architecture");
  GC_CHECK(archv && archv->type == MetaValue::Type::kString, ValueError, what,
           ": no general.architecture string");
  const std::string arch = archv->as_string();
  // gemma-embedding (EmbeddingGemma) is Gemma 3 with bidirectional attention.
  const bool embedding = arch == "gemma-embedding";
  GC_CHECK(arch == "gemma" || arch == "gemma2" || arch == "gemma3" || embedding, NotImplementedError, what,
           ": architecture '", arch, "' is not a Gemma 1/2/3 text model");
  const GgufKeys keys{f, arch};

  ModelConfig c;
  c.family = embedding ? "gemma3" : arch;
  const bool g1 = arch == "gemma", g3 = arch == "gemma3" || embedding;
  c.bidirectional = embedding;
  c.d = keys.integer("embedding_length");
  c.n_layers = keys.integer("block_count");
  c.n_heads = keys.integer("attention.head_count");
  c.n_kv_heads = keys.integer_or("attention.head_count_kv", c.n_heads);
  c.head_dim = keys.integer_or("attention.key_length", c.n_heads ? c.d / c.n_heads : 0);
  c.ffn = keys.integer("feed_forward_length");
  c.norm_eps = keys.number_or("attention.layer_norm_rms_epsilon", 1e-6);
  c.attn_softcap = float(keys.number_or("attn_logit_softcapping", 0));
  c.final_softcap = float(keys.number_or("final_logit_softcapping", 0));
  // GGUF has no query_pre_attn_scalar: llama.cpp uses head_dim, except d / H for the 27B models
  // (Gemma 2 with 46 layers, Gemma 3 with 62), which is what their HF configs say.
  const bool is_27b = (arch == "gemma2" && c.n_layers == 46) || (g3 && c.n_layers == 62);
  c.query_pre_attn_scalar = double(is_27b ? (c.n_heads ? c.d / c.n_heads : 0) : c.head_dim);
  c.qk_norm = g3;
  c.sandwich_norms = !g1;
  c.embed_scale = float(std::sqrt(double(c.d)));
  c.tied_head = true;
  c.norm_unit_offset = false;  // llama.cpp's converter stores Gemma's norm weights as 1 + w
  // The vocabulary size is the embedding's row count (tokenizer arrays may be absent).
  const WeightTensor* emb = f.find("token_embd.weight");
  GC_CHECK(emb && emb->shape.size() == 2, ValueError, what, ": no 2-d token_embd.weight");
  c.vocab = emb->shape[0];
  GC_CHECK(!f.find("output.weight"), NotImplementedError, what,
           ": untied output heads (output.weight) are not supported");

  const double g_base = keys.number_or("rope.freq_base", g3 ? 1e6 : 10000);
  double g_scale = 1;
  if (const MetaValue* t = keys.get("rope.scaling.type")) {
    const std::string type = t->as_string();
    if (type == "linear") g_scale = keys.number_or("rope.scaling.factor", 1);
    else GC_CHECK(type == "none", NotImplementedError, what, ": rope scaling '", type, "' is not supported");
  }
  // Gemma 3's local layers: base 10000 and no scaling unless the file says otherwise.
  const double l_base = g3 ? keys.number_or("rope.freq_base_swa", 10000) : g_base;
  const double l_scale = g3 ? 1.0 : g_scale;
  // The converter writes EmbeddingGemma's window as its config states the width: a radius of half.
  const int64_t window = g1 ? 0 : keys.integer_or("attention.sliding_window", 4096) / (embedding ? 2 : 1);
  // The pattern is an integer (every pattern-th layer global) or one bool per layer (true: local).
  const MetaValue* pat = keys.get("attention.sliding_window_pattern");
  const bool per_layer = pat && pat->type == MetaValue::Type::kArray;
  GC_CHECK(!per_layer || int64_t(pat->count) == c.n_layers, ValueError, what, ": ", arch,
           ".attention.sliding_window_pattern has ", per_layer ? pat->count : 0, " entries for ",
           c.n_layers, " layers");
  const int64_t pattern = pat && !per_layer ? pat->as_int() : 6;
  GC_CHECK(pattern >= 1, ValueError, what, ": sliding_window_pattern must be >= 1");
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerConfig l;
    if (per_layer) l.local = pat->element(uint64_t(i)).as_int() != 0;
    else l.local = g1 ? false : g3 ? (i + 1) % pattern != 0 : (i + 1) % 2 != 0;
    l.window = l.local ? window : 0;
    l.rope_base = l.local ? l_base : g_base;
    l.rope_scale = l.local ? l_scale : g_scale;
    c.layers.push_back(l);
  }
  c.validate();
  return c;
}

std::vector<std::pair<std::string, std::string>> gguf_names() {
  return {
        {"embed.weight", "token_embd.weight"},
        {"blocks.{i}.ln1.weight", "blk.{i}.attn_norm.weight"},
        {"blocks.{i}.attn.q.weight", "blk.{i}.attn_q.weight"},
        {"blocks.{i}.attn.k.weight", "blk.{i}.attn_k.weight"},
        {"blocks.{i}.attn.v.weight", "blk.{i}.attn_v.weight"},
        {"blocks.{i}.attn.o.weight", "blk.{i}.attn_output.weight"},
        {"blocks.{i}.attn.q_norm.weight", "blk.{i}.attn_q_norm.weight"},
        {"blocks.{i}.attn.k_norm.weight", "blk.{i}.attn_k_norm.weight"},
        {"blocks.{i}.ln1_post.weight", "blk.{i}.post_attention_norm.weight"},
        {"blocks.{i}.ln2.weight", "blk.{i}.ffn_norm.weight"},
        {"blocks.{i}.ln2_post.weight", "blk.{i}.post_ffw_norm.weight"},
        {"blocks.{i}.mlp.gate.weight", "blk.{i}.ffn_gate.weight"},
        {"blocks.{i}.mlp.up.weight", "blk.{i}.ffn_up.weight"},
        {"blocks.{i}.mlp.down.weight", "blk.{i}.ffn_down.weight"},
        {"ln_final.weight", "output_norm.weight"},
  };
}

NameMap name_map(const ModelConfig& c, const WeightFile& f) {
  if (f.format == "gguf") return NameMap("", gguf_names());  // llama.cpp's names
  // HF causal models save under "model."; multimodal Gemma 3 and PaliGemma under their language
  // model; a bare Gemma3TextModel (EmbeddingGemma's encoder) at the top.
  const std::string prefix =
      text_model_prefix(f, {"model.", "model.language_model.", "language_model.model.", ""}, "a Gemma");
  // Gemma 1 calls its pre-MLP norm post_attention_layernorm; Gemma 2/3 use that name for the
  // sandwich norm after attention and pre_feedforward_layernorm for the pre-MLP one.
  const bool g1 = c.family == "gemma";
  return NameMap(prefix, {
      {"embed.weight", "embed_tokens.weight"},
      {"blocks.{i}.ln1.weight", "layers.{i}.input_layernorm.weight"},
      {"blocks.{i}.attn.q.weight", "layers.{i}.self_attn.q_proj.weight"},
      {"blocks.{i}.attn.k.weight", "layers.{i}.self_attn.k_proj.weight"},
      {"blocks.{i}.attn.v.weight", "layers.{i}.self_attn.v_proj.weight"},
      {"blocks.{i}.attn.o.weight", "layers.{i}.self_attn.o_proj.weight"},
      {"blocks.{i}.attn.q_norm.weight", "layers.{i}.self_attn.q_norm.weight"},
      {"blocks.{i}.attn.k_norm.weight", "layers.{i}.self_attn.k_norm.weight"},
      {"blocks.{i}.ln1_post.weight", "layers.{i}.post_attention_layernorm.weight"},
      {"blocks.{i}.ln2.weight", g1 ? "layers.{i}.post_attention_layernorm.weight"
                                   : "layers.{i}.pre_feedforward_layernorm.weight"},
      {"blocks.{i}.ln2_post.weight", "layers.{i}.post_feedforward_layernorm.weight"},
      {"blocks.{i}.mlp.gate.weight", "layers.{i}.mlp.gate_proj.weight"},
      {"blocks.{i}.mlp.up.weight", "layers.{i}.mlp.up_proj.weight"},
      {"blocks.{i}.mlp.down.weight", "layers.{i}.mlp.down_proj.weight"},
      {"ln_final.weight", "norm.weight"},
  });
}

}  // namespace gemmacpp::gemma
