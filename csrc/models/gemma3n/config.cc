#include "csrc/models/gemma3n/config.h"

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "csrc/core/error.h"
#include "csrc/io/gguf_keys.h"
#include "csrc/models/gemma/config.h"
#include "csrc/models/gemma4/config.h"

namespace gemmacpp::gemma3n {

using json::Reader;
using json::Value;
using nn::LayerConfig;
using nn::ModelConfig;

namespace {

// What every Gemma 3n has, whichever file it came from.
void set_fixed(ModelConfig& c) {
  c.family = "gemma3n";
  c.query_pre_attn_scalar = 1;  // attention scale 1: the q/k norms set the scores' size
  c.qk_norm = c.v_norm = true;
  c.sandwich_norms = true;
  c.norm_unit_offset = false;  // weights used as stored (initialised to ones); llama.cpp shifts none
  c.embed_scale = float(std::sqrt(double(c.d)));
  if (c.per_layer_input > 0) c.per_layer_embed_scale = float(std::sqrt(double(c.per_layer_input)));
}

// Reads a per-layer list of numbers, or one number for every layer.
std::vector<double> per_layer_numbers(const Reader& r, const char* key, int64_t n, double dflt) {
  const Value* v = r.get(key);
  if (!v) return std::vector<double>(size_t(n), dflt);
  if (v->kind == Value::Kind::kNumber) return std::vector<double>(size_t(n), v->number);
  GC_CHECK(v->kind == Value::Kind::kArray && int64_t(v->array.size()) == n, ValueError, r.what, ": ", key,
           " must be a number or a list of ", n, " numbers (one per layer)");
  std::vector<double> out;
  for (const Value& e : v->array) {
    GC_CHECK(e.kind == Value::Kind::kNumber, ValueError, r.what, ": ", key, " must hold numbers");
    out.push_back(e.number);
  }
  return out;
}

// A RoPE block of rope_parameters: only the default RoPE (Gemma 3n's).
double rope_base(const Value* block, double dflt, const std::string& what) {
  if (!block) return dflt;
  const Reader r{*block, what};
  const std::string type = r.string_or("rope_type", "default");
  GC_CHECK(type == "default", NotImplementedError, what, ": rope_type '", type, "' is not supported (default)");
  GC_CHECK(!r.get("factor") || r.number_or("factor", 1.0) == 1.0, NotImplementedError, what,
           ": RoPE scaling is not supported");
  return r.number_or("rope_theta", dflt);
}

void set_sparsity(LayerConfig& l, double p, int64_t i, const std::string& what) {
  GC_CHECK(p >= 0 && p < 1, ValueError, what, ": activation_sparsity_pattern[", i, "] = ", p, " must be in [0, 1)");
  l.sparse_gate = p > 0;
  // transformers takes the quantile in float32 (Normal(0, 1).icdf of a float32 p).
  if (l.sparse_gate) l.gate_cutoff_z = float(normal_quantile(double(float(p))));
}

}  // namespace

double normal_quantile(double p) {
  GC_CHECK(p > 0 && p < 1, ValueError, "normal_quantile: p must be in (0, 1), got ", p);
  // Acklam's rational approximation (relative error 1e-9), then Newton steps on erfc.
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  double x;
  if (p < 0.02425) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p > 1 - 0.02425) {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }
  for (int it = 0; it < 2; ++it) {
    const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
    const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
    x -= u / (1 + x * u / 2);
  }
  return x;
}

ModelConfig config_from_hf(const Value& root, const std::string& what) {
  // gemma3n: the multimodal checkpoint, whose vision and audio towers are not read.
  const Reader r{gemma4::text_config(root, "gemma3n", what), what};
  gemma4::check_text_settings(r, /*with_head=*/true, what);

  ModelConfig c;  // defaults: transformers' Gemma3nTextConfig (E4B)
  c.vocab = r.integer_or("vocab_size", 262400);
  c.d = r.integer_or("hidden_size", 2048);
  c.n_layers = r.integer_or("num_hidden_layers", 35);
  c.n_heads = r.integer_or("num_attention_heads", 8);
  c.n_kv_heads = r.integer_or("num_key_value_heads", 2);
  c.head_dim = r.integer_or("head_dim", 256);
  c.norm_eps = r.number_or("rms_norm_eps", 1e-6);
  c.final_softcap = float(r.number_or("final_logit_softcapping", 0));
  if (!r.obj.get("final_logit_softcapping")) c.final_softcap = 30;  // absent: the class default; null: none
  c.per_layer_input = r.integer_or("hidden_size_per_layer_input", 256);
  GC_CHECK(c.per_layer_input >= 1, ValueError, what, ": hidden_size_per_layer_input must be >= 1");
  c.per_layer_vocab = r.integer_or("vocab_size_per_layer_input", 262144);
  c.altup_streams = r.integer_or("altup_num_inputs", 4);
  c.altup_active = r.integer_or("altup_active_idx", 0);
  GC_CHECK(c.altup_active == 0, NotImplementedError, what, ": altup_active_idx ", c.altup_active,
           " is not supported (0, as every released Gemma 3n)");
  c.altup_correct_scale = r.flag_or("altup_correct_scale", true);
  c.laurel_rank = r.integer_or("laurel_rank", 64);
  GC_CHECK(c.laurel_rank >= 1, ValueError, what, ": laurel_rank must be >= 1");
  set_fixed(c);

  const std::vector<double> ffn = per_layer_numbers(r, "intermediate_size", c.n_layers, 16384);
  c.ffn = int64_t(ffn[0]);
  const int64_t window = r.integer_or("sliding_window", 512);
  double full_base = r.number_or("rope_theta", 1e6), local_base = r.number_or("rope_local_base_freq", 10000);
  if (const Value* rp = r.object("rope_parameters")) {
    const Reader pr{*rp, what};
    local_base = rope_base(pr.object("sliding_attention"), local_base, what + " rope_parameters.sliding_attention");
    full_base = rope_base(pr.object("full_attention"), full_base, what + " rope_parameters.full_attention");
  }
  GC_CHECK(!r.object("rope_scaling"), NotImplementedError, what, ": rope_scaling is not supported");
  const Value* types = r.get("layer_types");
  GC_CHECK(!types || (types->kind == Value::Kind::kArray && int64_t(types->array.size()) == c.n_layers),
           ValueError, what, ": layer_types must be a list of ", c.n_layers, " strings");
  const int64_t sparse_default = c.n_layers > 10 ? 10 : 0;
  std::vector<double> sparsity = per_layer_numbers(r, "activation_sparsity_pattern", c.n_layers, 0.0);
  if (!r.get("activation_sparsity_pattern")) {
    for (int64_t i = 0; i < sparse_default; ++i) sparsity[size_t(i)] = 0.95;
  }
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerConfig l;
    if (types) {
      const Value& t = types->array[size_t(i)];
      GC_CHECK(t.kind == Value::Kind::kString && (t.str == "sliding_attention" || t.str == "full_attention"),
               ValueError, what, ": layer_types[", i, "] must be sliding_attention or full_attention");
      l.local = t.str == "sliding_attention";
    } else {
      l.local = (i + 1) % 5 != 0;
    }
    l.window = l.local ? window : 0;
    l.rope_base = l.local ? local_base : full_base;
    GC_CHECK(ffn[size_t(i)] >= 1 && ffn[size_t(i)] == std::floor(ffn[size_t(i)]), ValueError, what,
             ": intermediate_size[", i, "] must be a positive integer");
    if (int64_t(ffn[size_t(i)]) != c.ffn) l.ffn = int64_t(ffn[size_t(i)]);
    set_sparsity(l, sparsity[size_t(i)], i, what);
    c.layers.push_back(l);
  }
  gemma4::share_kv(c, r.integer_or("num_kv_shared_layers", 15), what);
  c.validate();
  return c;
}

ModelConfig slice(const ModelConfig& c, const MatFormer& m) {
  const int64_t L = c.n_layers;
  std::vector<bool> skip(size_t(L), false);
  for (int64_t i : m.skip_layers) {
    GC_CHECK(i >= 0 && i < L, ValueError, "matformer: skip_layers holds ", i, ", not a layer of 0 .. ", L - 1);
    GC_CHECK(!skip[size_t(i)], ValueError, "matformer: skip_layers names layer ", i, " twice");
    skip[size_t(i)] = true;
  }
  int64_t first_shared = L;
  for (int64_t i = 0; i < L; ++i) {
    if (c.layers[size_t(i)].kv_source >= 0) {
      first_shared = i;
      break;
    }
  }
  ModelConfig out = c;
  out.layers.clear();
  out.per_layer_slots = c.layer_ple_slots();
  int64_t shared = 0;
  for (int64_t i = 0; i < L; ++i) {
    if (skip[size_t(i)]) continue;
    LayerConfig l = c.layers[size_t(i)];
    l.source = l.source >= 0 ? l.source : i;
    l.per_layer_slot = c.layer_ple_slot(i);
    l.kv_source = -1;
    shared += i >= first_shared;
    out.layers.push_back(l);
  }
  out.n_layers = int64_t(out.layers.size());
  GC_CHECK(out.n_layers >= 1, ValueError, "matformer: skip_layers leaves no layer");
  GC_CHECK(m.ffn.size() <= 1 || int64_t(m.ffn.size()) == out.n_layers, ValueError, "matformer: ffn must be one width or ",
           out.n_layers, " (one per kept layer), got ", m.ffn.size());
  for (int64_t j = 0; j < out.n_layers; ++j) {
    LayerConfig& l = out.layers[size_t(j)];
    const int64_t stored = l.ffn_stored ? l.ffn_stored : c.layer_ffn(l.source);
    const int64_t want = m.ffn.empty() ? stored : m.ffn[m.ffn.size() == 1 ? 0 : size_t(j)];
    GC_CHECK(want >= 1 && want <= stored, ValueError, "matformer: layer ", l.source, " (kept as ", j,
             ") has an MLP of ", stored, "; ffn ", want, " must be in [1, ", stored, "]");
    l.ffn_stored = stored;
    l.ffn = want;
  }
  gemma4::share_kv(out, shared, "matformer");
  out.validate();
  return out;
}

ModelConfig config_from_gguf(const WeightFile& f) {
  const std::string what = "'" + f.path + "'";
  const std::string arch = "gemma3n";
  const GgufKeys keys{f, arch};
  ModelConfig c;
  c.d = keys.integer("embedding_length");
  c.n_layers = keys.integer("block_count");
  c.n_heads = keys.integer("attention.head_count");
  c.n_kv_heads = keys.integer_or("attention.head_count_kv", c.n_heads);
  c.head_dim = keys.integer_or("attention.key_length", c.d / c.n_heads);
  c.norm_eps = keys.number_or("attention.layer_norm_rms_epsilon", 1e-6);
  // llama.cpp's converter may leave the soft-cap out; every released Gemma 3n's config has 30.
  c.final_softcap = float(keys.number_or("final_logit_softcapping", 30.0));
  const WeightTensor* emb = f.find("token_embd.weight");
  GC_CHECK(emb && emb->shape.size() == 2, ValueError, what, ": no 2-d token_embd.weight");
  c.vocab = emb->shape[0];
  GC_CHECK(!f.find("output.weight"), NotImplementedError, what,
           ": untied output heads (output.weight) are not supported");
  c.per_layer_input = keys.integer("embedding_length_per_layer_input");
  const WeightTensor* ple = f.find("per_layer_token_embd.weight");
  GC_CHECK(ple && ple->shape.size() == 2, ValueError, what, ": no 2-d per_layer_token_embd.weight");
  c.per_layer_vocab = ple->shape[0];
  c.altup_streams = keys.integer_or("altup.num_inputs", 4);
  c.altup_active = keys.integer_or("altup.active_idx", 0);
  GC_CHECK(c.altup_active == 0, NotImplementedError, what, ": altup.active_idx ", c.altup_active,
           " is not supported (0, as every released Gemma 3n)");
  const WeightTensor* laurel = f.find("blk.0.laurel_l.weight");
  GC_CHECK(laurel && laurel->shape.size() == 2, ValueError, what, ": no 2-d blk.0.laurel_l.weight");
  c.laurel_rank = laurel->shape[0];
  set_fixed(c);

  std::vector<int64_t> ffn(size_t(c.n_layers));
  const MetaValue* fv = keys.get("feed_forward_length");
  GC_CHECK(fv, ValueError, what, ": missing ", arch, ".feed_forward_length");
  for (int64_t i = 0; i < c.n_layers; ++i) {
    if (fv->type == MetaValue::Type::kArray) {
      GC_CHECK(int64_t(fv->count) == c.n_layers, ValueError, what, ": ", arch, ".feed_forward_length has ",
               fv->count, " entries for ", c.n_layers, " layers");
      ffn[size_t(i)] = fv->element(uint64_t(i)).as_int();
    } else {
      ffn[size_t(i)] = fv->as_int();
    }
  }
  c.ffn = ffn[0];
  const MetaValue* pat = keys.get("attention.sliding_window_pattern");
  GC_CHECK(pat && pat->type == MetaValue::Type::kArray && int64_t(pat->count) == c.n_layers, ValueError, what,
           ": ", arch, ".attention.sliding_window_pattern must be one bool per layer");
  // The normal quantile of each layer's sparsity; -inf (the quantile of 0) on dense layers.
  const MetaValue* sparsity = keys.get("activation_sparsity_scale");
  GC_CHECK(!sparsity || (sparsity->type == MetaValue::Type::kArray && int64_t(sparsity->count) == c.n_layers),
           ValueError, what, ": ", arch, ".activation_sparsity_scale must be one number per layer");
  const int64_t window = keys.integer("attention.sliding_window");
  const double global_base = keys.number_or("rope.freq_base", 1e6), local_base = keys.number_or("rope.freq_base_swa", 10000);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerConfig l;
    l.local = pat->element(uint64_t(i)).as_int() != 0;
    l.window = l.local ? window : 0;
    l.rope_base = l.local ? local_base : global_base;
    if (ffn[size_t(i)] != c.ffn) l.ffn = ffn[size_t(i)];
    if (sparsity) {
      const double z = sparsity->element(uint64_t(i)).as_double();
      l.sparse_gate = std::isfinite(z);
      if (l.sparse_gate) l.gate_cutoff_z = float(z);
    }
    c.layers.push_back(l);
  }
  gemma4::share_kv(c, keys.integer_or("attention.shared_kv_layers", 0), what);
  c.validate();
  return c;
}

NameMap name_map(const ModelConfig& c, const WeightFile& f) {
  (void)c;
  if (f.format == "gguf") {
    // llama.cpp's names; the stacked AltUp projections are read as the slices make_model adds
    // (altup_proj.{k}.weight, altup_unembd_proj.{k}.weight).
    std::vector<std::pair<std::string, std::string>> names = gemma::gguf_names();
    names.insert(names.end(), {
        {"per_layer_embed.weight", "per_layer_token_embd.weight"},
        {"per_layer_proj.weight", "per_layer_model_proj.weight"},
        {"per_layer_proj_norm.weight", "per_layer_proj_norm.weight"},
        {"altup_proj.{i}.weight", "altup_proj.{i}.weight"},
        {"altup_unembed.{i}.weight", "altup_unembd_proj.{i}.weight"},
        {"blocks.{i}.ple.gate.weight", "blk.{i}.inp_gate.weight"},
        {"blocks.{i}.ple.proj.weight", "blk.{i}.proj.weight"},
        {"blocks.{i}.ple.post_norm.weight", "blk.{i}.post_norm.weight"},
        {"blocks.{i}.altup.router.weight", "blk.{i}.altup_router.weight"},
        {"blocks.{i}.altup.router_norm.weight", "blk.{i}.altup_router_norm.weight"},
        {"blocks.{i}.altup.pred_coefs.weight", "blk.{i}.altup_predict_coef.weight"},
        {"blocks.{i}.altup.corr_coefs.weight", "blk.{i}.altup_correct_coef.weight"},
        {"blocks.{i}.altup.out_scale", "blk.{i}.altup_correct_scale.weight"},
        {"blocks.{i}.laurel.left.weight", "blk.{i}.laurel_l.weight"},
        {"blocks.{i}.laurel.right.weight", "blk.{i}.laurel_r.weight"},
        {"blocks.{i}.laurel.post_norm.weight", "blk.{i}.laurel_post_norm.weight"},
    });
    return NameMap("", std::move(names));
  }
  std::vector<std::pair<std::string, std::string>> names = {
      {"embed.weight", "embed_tokens.weight"},
      {"per_layer_embed.weight", "embed_tokens_per_layer.weight"},
      {"per_layer_proj.weight", "per_layer_model_projection.weight"},
      {"per_layer_proj_norm.weight", "per_layer_projection_norm.weight"},
      {"altup_proj.{i}.weight", "altup_projections.{i}.weight"},
      {"altup_unembed.{i}.weight", "altup_unembed_projections.{i}.weight"},
      {"ln_final.weight", "norm.weight"},
      {"blocks.{i}.ln1.weight", "layers.{i}.input_layernorm.weight"},
      {"blocks.{i}.attn.q_norm.weight", "layers.{i}.self_attn.q_norm.weight"},
      {"blocks.{i}.attn.k_norm.weight", "layers.{i}.self_attn.k_norm.weight"},
      {"blocks.{i}.ln1_post.weight", "layers.{i}.post_attention_layernorm.weight"},
      {"blocks.{i}.ln2.weight", "layers.{i}.pre_feedforward_layernorm.weight"},
      {"blocks.{i}.ln2_post.weight", "layers.{i}.post_feedforward_layernorm.weight"},
      {"blocks.{i}.ple.gate.weight", "layers.{i}.per_layer_input_gate.weight"},
      {"blocks.{i}.ple.proj.weight", "layers.{i}.per_layer_projection.weight"},
      {"blocks.{i}.ple.post_norm.weight", "layers.{i}.post_per_layer_input_norm.weight"},
      {"blocks.{i}.altup.router.weight", "layers.{i}.altup.modality_router.weight"},
      {"blocks.{i}.altup.router_norm.weight", "layers.{i}.altup.router_norm.weight"},
      {"blocks.{i}.altup.pred_coefs.weight", "layers.{i}.altup.prediction_coefs.weight"},
      {"blocks.{i}.altup.corr_coefs.weight", "layers.{i}.altup.correction_coefs.weight"},
      {"blocks.{i}.altup.out_scale", "layers.{i}.altup.correct_output_scale"},
      {"blocks.{i}.laurel.left.weight", "layers.{i}.laurel.linear_left.weight"},
      {"blocks.{i}.laurel.right.weight", "layers.{i}.laurel.linear_right.weight"},
      {"blocks.{i}.laurel.post_norm.weight", "layers.{i}.laurel.post_laurel_norm.weight"},
  };
  for (const char* p : {"q", "k", "v", "o"}) {
    names.emplace_back(std::string("blocks.{i}.attn.") + p + ".weight", std::string("layers.{i}.self_attn.") + p + "_proj.weight");
  }
  for (const char* p : {"gate", "up", "down"}) {
    names.emplace_back(std::string("blocks.{i}.mlp.") + p + ".weight", std::string("layers.{i}.mlp.") + p + "_proj.weight");
  }
  // Gemma3nForCausalLM saves under "model."; Gemma3nForConditionalGeneration under
  // "model.language_model." (beside its towers, which are not read); a bare Gemma3nTextModel at the top.
  return NameMap(text_model_prefix(f, {"model.", "model.language_model.", "language_model.model.", ""}, "a Gemma 3n"),
                 std::move(names));
}

}  // namespace gemmacpp::gemma3n
