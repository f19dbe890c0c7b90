#include "csrc/nn/config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "csrc/core/error.h"
#include "csrc/io/json_reader.h"
#include "csrc/io/weights.h"

namespace gemmacpp {

float ModelConfig::attn_scale() const {
  return float(1.0 / std::sqrt(query_pre_attn_scalar));
}

void ModelConfig::validate() const {
  auto pos = [&](int64_t v, const char* name) {
    GC_CHECK(v >= 1, ValueError, "model config: ", name, " must be >= 1, got ", v);
  };
  pos(vocab, "vocab_size"); pos(d, "hidden_size"); pos(n_layers, "num_hidden_layers");
  pos(n_heads, "num_attention_heads"); pos(n_kv_heads, "num_key_value_heads");
  pos(head_dim, "head_dim"); pos(ffn, "intermediate_size");
  GC_CHECK(n_heads % n_kv_heads == 0, ValueError, "model config: num_attention_heads (", n_heads,
           ") is not a multiple of num_key_value_heads (", n_kv_heads, ")");
  GC_CHECK(head_dim % 2 == 0, ValueError, "model config: head_dim must be even for RoPE, got ", head_dim);
  GC_CHECK(int64_t(layers.size()) == n_layers, ValueError, "model config: ", layers.size(),
           " layer types for ", n_layers, " layers");
  GC_CHECK(query_pre_attn_scalar > 0, ValueError, "model config: query_pre_attn_scalar must be > 0");
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerConfig& l = layers[i];
    GC_CHECK(!l.local || l.window >= 1, ValueError, "model config: layer ", i,
             " is local but its window is ", l.window);
    GC_CHECK(l.rope_base > 0 && l.rope_scale > 0, ValueError, "model config: layer ", i,
             " has RoPE base ", l.rope_base, " and scale ", l.rope_scale);
  }
}

namespace {

using json::Value;

struct Reader {
  const Value& obj;
  std::string what;

  const Value* get(const char* key) const {
    const Value* v = obj.get(key);
    return (v && v->kind != Value::Kind::kNull) ? v : nullptr;
  }
  int64_t integer(const char* key) const {
    const Value* v = get(key);
    GC_CHECK(v, ValueError, what, ": missing ", key);
    GC_CHECK(v->is_uint() && v->magnitude < (uint64_t(1) << 40), ValueError, what, ": ", key,
             " must be a non-negative integer");
    return int64_t(v->magnitude);
  }
  int64_t integer_or(const char* key, int64_t dflt) const { return get(key) ? integer(key) : dflt; }
  double number_or(const char* key, double dflt) const {
    const Value* v = get(key);
    if (!v) return dflt;
    GC_CHECK(v->kind == Value::Kind::kNumber, ValueError, what, ": ", key, " must be a number");
    return v->number;
  }
  std::string string_or(const char* key, const std::string& dflt) const {
    const Value* v = get(key);
    if (!v) return dflt;
    GC_CHECK(v->kind == Value::Kind::kString, ValueError, what, ": ", key, " must be a string");
    return v->str;
  }
};

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

// RecurrentGemma, as transformers' RecurrentGemmaConfig reads it: head_dim is always d / H, the
// block types repeat over the layers, every attention block is local, and the embedding scale is
// sqrt(d) rounded to bfloat16 (transformers keeps that normaliser in a bfloat16 buffer).
ModelConfig recurrent_gemma_config(const Reader& r, const std::string& what) {
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
    l.recurrent = pattern[size_t(i) % pattern.size()] == "recurrent";
    l.local = !l.recurrent;
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

}  // namespace

ModelConfig config_from_hf_json(const std::string& text, const std::string& what) {
  Value root = json::parse(text.data(), text.size(), what);
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
  if (type == "recurrent_gemma") return recurrent_gemma_config(Reader{root, what}, what);
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

ModelConfig config_from_hf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  GC_CHECK(in, ValueError, "cannot open '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return config_from_hf_json(ss.str(), "'" + path + "'");
}

void VisionConfig::validate() const {
  auto pos = [&](int64_t v, const char* name) {
    GC_CHECK(v >= 1, ValueError, "vision config: ", name, " must be >= 1, got ", v);
  };
  pos(d, "hidden_size"); pos(n_layers, "num_hidden_layers"); pos(n_heads, "num_attention_heads");
  pos(ffn, "intermediate_size"); pos(image_size, "image_size"); pos(patch, "patch_size");
  pos(channels, "num_channels");
  GC_CHECK(d % n_heads == 0, ValueError, "vision config: hidden_size (", d,
           ") is not a multiple of num_attention_heads (", n_heads, ")");
  GC_CHECK(image_size % patch == 0, ValueError, "vision config: image_size (", image_size,
           ") is not a multiple of patch_size (", patch, ")");
}

VisionConfig vision_config_from_hf_json(const std::string& text, const std::string& what) {
  Value root = json::parse(text.data(), text.size(), what);
  GC_CHECK(root.kind == Value::Kind::kObject, ValueError, what, ": not a JSON object");
  const std::string type = Reader{root, what}.string_or("model_type", "");
  const Value* obj = &root;
  if (type != "siglip_vision_model") {
    obj = root.get("vision_config");
    GC_CHECK(obj && obj->kind == Value::Kind::kObject, ValueError, what, ": model_type '", type,
             "' has no vision_config object");
  }
  Reader r{*obj, what};
  const std::string act = r.string_or("hidden_act", "gelu_pytorch_tanh");
  GC_CHECK(act == "gelu_pytorch_tanh" || act == "gelu_tanh", NotImplementedError, what,
           ": vision hidden_act '", act, "' is not supported (only gelu_pytorch_tanh)");
  VisionConfig c;  // defaults: HF's SiglipVisionConfig
  c.d = r.integer_or("hidden_size", 768);
  c.n_layers = r.integer_or("num_hidden_layers", 12);
  c.n_heads = r.integer_or("num_attention_heads", 12);
  c.head_dim = c.n_heads ? c.d / c.n_heads : 0;
  c.ffn = r.integer_or("intermediate_size", 3072);
  c.image_size = r.integer_or("image_size", 224);
  c.patch = r.integer_or("patch_size", 16);
  c.channels = r.integer_or("num_channels", 3);
  c.norm_eps = r.number_or("layer_norm_eps", 1e-6);
  c.validate();
  return c;
}

VisionConfig vision_config_from_hf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  GC_CHECK(in, ValueError, "cannot open '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return vision_config_from_hf_json(ss.str(), "'" + path + "'");
}

ModelConfig config_from_gguf(const WeightFile& f) {
  const std::string what = "'" + f.path + "'";
  const MetaValue* archv = f.meta("general.architecture");
  GC_CHECK(archv && archv->type == MetaValue::Type::kString, ValueError, what,
           ": no general.architecture string");
  const std::string arch = archv->as_string();
  GC_CHECK(arch == "gemma" || arch == "gemma2" || arch == "gemma3", NotImplementedError, what,
           ": architecture '", arch, "' is not a Gemma 1/2/3 text model");
  auto meta = [&](const std::string& key) { return f.meta(arch + "." + key); };
  auto integer = [&](const std::string& key) {
    const MetaValue* v = meta(key);
    GC_CHECK(v, ValueError, what, ": missing ", arch, ".", key);
    return v->as_int();
  };
  auto integer_or = [&](const std::string& key, int64_t dflt) { return meta(key) ? meta(key)->as_int() : dflt; };
  auto number_or = [&](const std::string& key, double dflt) { return meta(key) ? meta(key)->as_double() : dflt; };

  ModelConfig c;
  c.family = arch;
  const bool g1 = arch == "gemma", g3 = arch == "gemma3";
  c.d = integer("embedding_length");
  c.n_layers = integer("block_count");
  c.n_heads = integer("attention.head_count");
  c.n_kv_heads = integer_or("attention.head_count_kv", c.n_heads);
  c.head_dim = integer_or("attention.key_length", c.n_heads ? c.d / c.n_heads : 0);
  c.ffn = integer("feed_forward_length");
  c.norm_eps = number_or("attention.layer_norm_rms_epsilon", 1e-6);
  c.attn_softcap = float(number_or("attn_logit_softcapping", 0));
  c.final_softcap = float(number_or("final_logit_softcapping", 0));
  // GGUF has no query_pre_attn_scalar: llama.cpp uses head_dim, except d / H for the 27B models
  // (Gemma 2 with 46 layers, Gemma 3 with 62), which is what their HF configs say.
  const bool is_27b = (arch == "gemma2" && c.n_layers == 46) || (g3 && c.n_layers == 62);
  c.query_pre_attn_scalar = double(is_27b ? c.d / c.n_heads : c.head_dim);
  c.qk_norm = g3;
  c.sandwich_norms = !g1;
  c.embed_scale = float(std::sqrt(double(c.d)));
  c.tied_head = true;
  // The vocabulary size is the embedding's row count (tokenizer arrays may be absent).
  const WeightTensor* emb = f.find("token_embd.weight");
  GC_CHECK(emb && emb->shape.size() == 2, ValueError, what, ": no 2-d token_embd.weight");
  c.vocab = emb->shape[0];
  GC_CHECK(!f.find("output.weight"), NotImplementedError, what,
           ": untied output heads (output.weight) are not supported");

  const double g_base = number_or("rope.freq_base", g3 ? 1e6 : 10000);
  double g_scale = 1;
  if (const MetaValue* t = meta("rope.scaling.type")) {
    const std::string type = t->as_string();
    if (type == "linear") g_scale = number_or("rope.scaling.factor", 1);
    else GC_CHECK(type == "none", NotImplementedError, what, ": rope scaling '", type, "' is not supported");
  }
  // Gemma 3's local layers: base 10000 and no scaling unless the file says otherwise.
  const double l_base = g3 ? number_or("rope.freq_base_swa", 10000) : g_base;
  const double l_scale = g3 ? 1.0 : g_scale;
  const int64_t window = g1 ? 0 : integer_or("attention.sliding_window", 4096);
  // The pattern is an integer (every pattern-th layer global) or one bool per layer (true: local).
  const MetaValue* pat = meta("attention.sliding_window_pattern");
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

}  // namespace gemmacpp
