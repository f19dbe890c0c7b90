#include "csrc/models/gemma.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "csrc/core/error.h"
#include "csrc/cpu/activation.h"
#include "csrc/cpu/attention.h"
#include "csrc/cpu/linear.h"
#include "csrc/cpu/quant.h"
#include "csrc/cpu/quant_blocks.h"
#include "csrc/cpu/rms_norm.h"
#include "csrc/cpu/rope.h"
#include "csrc/cpu/softcap.h"

namespace gemmacpp {
namespace {

bool is_directory(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string parent_dir(const std::string& p) {
  size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
}

// Binds tensors by name below a prefix, checking shapes and types as it goes.
struct Binder {
  const WeightFile& f;
  std::string prefix;

  // Matrices may be GGML block-quantized (read by linear_quantized); norms may not.
  const WeightTensor* get(const std::string& name, std::vector<int64_t> shape, bool matrix = false) const {
    const WeightTensor* t = f.find(prefix + name);
    GC_CHECK(t, ValueError, "'", f.path, "' has no tensor '", prefix + name, "'");
    GC_CHECK(t->shape == shape, ValueError, "'", f.path, "': tensor '", t->name, "' has shape ",
             shape_string(t->shape), ", the config needs ", shape_string(shape));
    GC_CHECK(t->supported, NotImplementedError, "'", f.path, "': tensor '", t->name,
             "' is stored as ", t->type_name(), ", which gemmacpp does not read");
    if (t->quantized) {
      cpu::QType q = cpu::QType::kQ8_0;
      GC_CHECK(matrix && parse_qtype(t->type_name(), &q), NotImplementedError, "'", f.path,
               "': tensor '", t->name, "' is stored as ", t->type_name(), ", which gemmacpp cannot use here");
      GC_CHECK(shape.back() % qtype_info(q).block_values == 0, ValueError, "'", f.path, "': tensor '",
               t->name, "' rows of ", shape.back(), " are not whole ", t->type_name(), " blocks");
      return t;
    }
    GC_CHECK(is_float_activation(t->dtype), TypeError, "'", f.path, "': tensor '", t->name,
             "' has dtype ", dtype_name(t->dtype), "; expected float32, float16 or bfloat16");
    return t;
  }
};

// out[M, N] = x[M, K] W^T for W [N, K] in its stored dtype.
void matmul(const float* x, int64_t M, int64_t K, const WeightTensor& w, float* out) {
  const int64_t N = w.shape[0];
  if (w.quantized) {
    cpu::QType q = cpu::QType::kQ8_0;
    parse_qtype(w.type_name(), &q);  // checked when bound
    cpu::linear_quantized(x, K, M, K, q, w.data, N, nullptr, out, N);
    return;
  }
  cpu::linear(x, K, M, K, w.dtype, w.data, K, N, nullptr, out, N);
}

// Embedding rows in float32, times the scale (the scale is float32, as in the reference).
void embed_rows(const WeightTensor& e, const int64_t* tokens, int64_t M, int64_t d, float scale, float* x) {
  for (int64_t m = 0; m < M; ++m) {
    const int64_t id = tokens[m];
    float* row = x + m * d;
    if (e.quantized) {
      cpu::QType q = cpu::QType::kQ8_0;
      parse_qtype(e.type_name(), &q);
      const uint64_t row_bytes = uint64_t(e.nbytes / uint64_t(e.shape[0]));
      cpu::dequantize(q, e.data + uint64_t(id) * row_bytes, 1, d, row);
      for (int64_t j = 0; j < d; ++j) row[j] *= scale;
      continue;
    }
    switch (e.dtype) {
      case DType::kF32: {
        const float* src = reinterpret_cast<const float*>(e.data) + id * d;
        for (int64_t j = 0; j < d; ++j) row[j] = src[j] * scale;
        break;
      }
      case DType::kBF16: case DType::kF16: {
        const uint8_t* src = e.data + id * d * 2;
        for (int64_t j = 0; j < d; ++j) {
          uint16_t h;
          std::memcpy(&h, src + 2 * j, 2);
          row[j] = (e.dtype == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h)) * scale;
        }
        break;
      }
      default:
        throw TypeError(str_cat("embedding dtype ", dtype_name(e.dtype), " is not supported"));
    }
  }
}

void add_into(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

// Copies new keys (or values) [B, T, row] into cache rows [pos][B][row] for t in [t0, T), where
// row `pos` of the destination is dest_row(pos0 + t).
template <typename RowOf>
void store_rows(const float* src, int64_t B, int64_t T, int64_t row, int64_t t0, int64_t pos0,
                RowOf dest_row, float* dst) {
  for (int64_t t = t0; t < T; ++t) {
    for (int64_t b = 0; b < B; ++b) {
      std::memcpy(dst + (dest_row(pos0 + t) * B + b) * row, src + (b * T + t) * row, size_t(row) * sizeof(float));
    }
  }
}

}  // namespace

GemmaModel::GemmaModel(ModelConfig config, std::shared_ptr<const WeightFile> weights)
    : config_(std::move(config)), weights_(std::move(weights)) {
  const ModelConfig& c = config_;
  c.validate();
  const WeightFile& f = *weights_;
  const bool gguf = f.format == "gguf";
  // llama.cpp's converter stores Gemma norm weights as 1 + w; HF files store w.
  norm_unit_offset_ = !gguf;
  // HF text models save under "model."; multimodal Gemma 3 under its language model.
  std::string prefix;
  if (!gguf) {
    for (const char* p : {"model.", "model.language_model.", "language_model.model."}) {
      if (f.find(std::string(p) + "embed_tokens.weight")) { prefix = p; break; }
    }
    GC_CHECK(!prefix.empty(), ValueError, "'", f.path,
             "' has no embedding tensor (model.embed_tokens.weight): not a Gemma checkpoint?");
  }
  Binder b{f, prefix};
  // One tensor by its HF name or its GGUF name.
  auto get = [&](const std::string& hf, const std::string& gg, std::vector<int64_t> shape,
                 bool matrix = false) { return b.get(gguf ? gg : hf, std::move(shape), matrix); };
  const int64_t d = c.d, qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
  embed_ = get("embed_tokens.weight", "token_embd.weight", {c.vocab, d}, true);
  final_norm_ = get("norm.weight", "output_norm.weight", {d});
  const bool g1 = c.family == "gemma";
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string l = "layers." + std::to_string(i) + ".", g = "blk." + std::to_string(i) + ".";
    GemmaLayerWeights w;
    w.attn_norm = get(l + "input_layernorm.weight", g + "attn_norm.weight", {d});
    w.q = get(l + "self_attn.q_proj.weight", g + "attn_q.weight", {qd, d}, true);
    w.k = get(l + "self_attn.k_proj.weight", g + "attn_k.weight", {kvd, d}, true);
    w.v = get(l + "self_attn.v_proj.weight", g + "attn_v.weight", {kvd, d}, true);
    w.o = get(l + "self_attn.o_proj.weight", g + "attn_output.weight", {d, qd}, true);
    if (c.qk_norm) {
      w.q_norm = get(l + "self_attn.q_norm.weight", g + "attn_q_norm.weight", {c.head_dim});
      w.k_norm = get(l + "self_attn.k_norm.weight", g + "attn_k_norm.weight", {c.head_dim});
    }
    // Gemma 1 calls its pre-MLP norm post_attention_layernorm; Gemma 2/3 use that name for the
    // sandwich norm after attention and pre_feedforward_layernorm for the pre-MLP one.
    if (g1) {
      w.ffw_norm = get(l + "post_attention_layernorm.weight", g + "ffn_norm.weight", {d});
    } else {
      w.post_attn_norm = get(l + "post_attention_layernorm.weight", g + "post_attention_norm.weight", {d});
      w.ffw_norm = get(l + "pre_feedforward_layernorm.weight", g + "ffn_norm.weight", {d});
      w.post_ffw_norm = get(l + "post_feedforward_layernorm.weight", g + "post_ffw_norm.weight", {d});
    }
    w.gate = get(l + "mlp.gate_proj.weight", g + "ffn_gate.weight", {c.ffn, d}, true);
    w.up = get(l + "mlp.up_proj.weight", g + "ffn_up.weight", {c.ffn, d}, true);
    w.down = get(l + "mlp.down_proj.weight", g + "ffn_down.weight", {d, c.ffn}, true);
    layers_.push_back(w);
  }
}

void GemmaModel::forward(const int64_t* tokens, int64_t B, int64_t T, float* logits, KVCache* cache,
                         bool last_only) const {
  const ModelConfig& c = config_;
  GC_CHECK(B >= 1 && T >= 1, ValueError, "forward: tokens must be a non-empty [B, T] batch, got [",
           B, ", ", T, "]");
  for (int64_t i = 0; i < B * T; ++i) {
    GC_CHECK(tokens[i] >= 0 && tokens[i] < c.vocab, ValueError, "forward: token id ", tokens[i],
             " is out of range [0, ", c.vocab, ")");
  }
  const int64_t pos0 = cache ? cache->length() : 0;
  if (cache) {
    GC_CHECK(cache->batch() == B, ValueError, "forward: the cache holds ", cache->batch(),
             " sequences, tokens have ", B);
    GC_CHECK(int64_t(cache->layers().size()) == c.n_layers, ValueError,
             "forward: the cache was made for a model with ", cache->layers().size(), " layers");
    GC_CHECK(pos0 + T <= cache->max_len(), ValueError, "forward: the cache holds ", pos0,
             " positions of at most ", cache->max_len(), "; ", T, " more do not fit");
  }
  const int64_t M = B * T, d = c.d, H = c.n_heads, K = c.n_kv_heads, D = c.head_dim, F = c.ffn;
  const float eps = float(c.norm_eps);
  std::vector<float> x(size_t(M * d)), h(size_t(M * d)), q(size_t(M * H * D)), k(size_t(M * K * D)),
      v(size_t(M * K * D)), o(size_t(M * H * D)), gate(size_t(M * F)), up(size_t(M * F));
  std::vector<int64_t> positions(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) positions[size_t(t)] = pos0 + t;
  std::vector<float> k_window, v_window;  // a ring layer's keys/values in position order

  auto norm = [&](const float* in, float* out, int64_t rows, int64_t width, const WeightTensor* w) {
    cpu::rms_norm(DType::kF32, in, out, rows, width, w->dtype, w->data, eps, norm_unit_offset_);
  };

  embed_rows(*embed_, tokens, M, d, c.embed_scale, x.data());
  for (int64_t li = 0; li < c.n_layers; ++li) {
    const GemmaLayerWeights& w = layers_[size_t(li)];
    const LayerConfig& lc = c.layers[size_t(li)];

    norm(x.data(), h.data(), M, d, w.attn_norm);
    matmul(h.data(), M, d, *w.q, q.data());
    matmul(h.data(), M, d, *w.k, k.data());
    matmul(h.data(), M, d, *w.v, v.data());
    if (c.qk_norm) {
      norm(q.data(), q.data(), M * H, D, w.q_norm);
      norm(k.data(), k.data(), M * K, D, w.k_norm);
    }
    cpu::rope(DType::kF32, q.data(), q.data(), B, T, H, D, DType::kI64, positions.data(), false,
              lc.rope_base, lc.rope_scale, D);
    cpu::rope(DType::kF32, k.data(), k.data(), B, T, K, D, DType::kI64, positions.data(), false,
              lc.rope_base, lc.rope_scale, D);

    cpu::AttentionArgs a;
    a.dtype = DType::kF32;
    a.q = q.data(); a.k = k.data(); a.v = v.data(); a.out = o.data();
    a.B = B; a.Tq = T; a.Tk = T; a.Hq = H; a.Hkv = K; a.D = D;
    const int64_t qs[3] = {T * H * D, H * D, D}, ks[3] = {T * K * D, K * D, D};
    for (int j = 0; j < 3; ++j) {
      a.q_stride[j] = a.out_stride[j] = qs[j];
      a.k_stride[j] = a.v_stride[j] = ks[j];
    }
    a.causal = true;
    a.window = lc.local ? lc.window : 0;
    if (cache) {
      // Keys live in cache rows [pos][B][K*D]: batch stride K*D, position stride B*K*D.
      LayerKV& kv = cache->layers()[size_t(li)];
      const int64_t R = B * K * D;
      if (!kv.ring) {
        kv.k.resize(size_t((pos0 + T) * R));
        kv.v.resize(size_t((pos0 + T) * R));
        auto same = [](int64_t p) { return p; };
        store_rows(k.data(), B, T, K * D, 0, pos0, same, kv.k.data());
        store_rows(v.data(), B, T, K * D, 0, pos0, same, kv.v.data());
        a.k = kv.k.data(); a.v = kv.v.data();
        a.Tk = pos0 + T;
        a.q_start = pos0;
      } else {
        // The window's older keys come out of the ring in position order, then the new ones, so
        // the kernel sees one contiguous run; relative positions (all the mask needs) are kept.
        const int64_t W = kv.capacity, n_old = std::min(W - 1, pos0);
        k_window.resize(size_t((n_old + T) * R));
        v_window.resize(size_t((n_old + T) * R));
        for (int64_t j = 0; j < n_old; ++j) {
          const int64_t src = (pos0 - n_old + j) % W;
          std::memcpy(k_window.data() + j * R, kv.k.data() + src * R, size_t(R) * sizeof(float));
          std::memcpy(v_window.data() + j * R, kv.v.data() + src * R, size_t(R) * sizeof(float));
        }
        auto after_old = [&](int64_t p) { return p - pos0 + n_old; };
        store_rows(k.data(), B, T, K * D, 0, pos0, after_old, k_window.data());
        store_rows(v.data(), B, T, K * D, 0, pos0, after_old, v_window.data());
        // Only the last W new positions can be seen again.
        const int64_t rows = std::min(W, pos0 + T);
        kv.k.resize(size_t(rows * R));
        kv.v.resize(size_t(rows * R));
        auto ring = [W](int64_t p) { return p % W; };
        store_rows(k.data(), B, T, K * D, std::max<int64_t>(0, T - W), pos0, ring, kv.k.data());
        store_rows(v.data(), B, T, K * D, std::max<int64_t>(0, T - W), pos0, ring, kv.v.data());
        a.k = k_window.data(); a.v = v_window.data();
        a.Tk = n_old + T;
        a.q_start = n_old;
      }
      for (int j = 0; j < 3; ++j) a.k_stride[j] = a.v_stride[j] = (j == 0 ? K * D : j == 1 ? R : D);
    }
    a.softcap = c.attn_softcap;
    a.scale = c.attn_scale();
    cpu::attention(a);

    matmul(o.data(), M, H * D, *w.o, h.data());
    if (w.post_attn_norm) norm(h.data(), h.data(), M, d, w.post_attn_norm);
    add_into(x.data(), h.data(), M * d);

    norm(x.data(), h.data(), M, d, w.ffw_norm);
    matmul(h.data(), M, d, *w.gate, gate.data());
    matmul(h.data(), M, d, *w.up, up.data());
    cpu::geglu(DType::kF32, gate.data(), up.data(), gate.data(), M * F);
    matmul(gate.data(), M, F, *w.down, h.data());
    if (w.post_ffw_norm) norm(h.data(), h.data(), M, d, w.post_ffw_norm);
    add_into(x.data(), h.data(), M * d);
  }
  if (cache) cache->advance(T);
  // With last_only, only each sequence's last position goes through the head: a prompt's other
  // logits are not needed to generate, and the head is the largest matrix product of prefill.
  int64_t rows = M;
  if (last_only && T > 1) {
    for (int64_t b = 0; b < B; ++b) {
      std::memmove(x.data() + b * d, x.data() + (b * T + T - 1) * d, size_t(d) * sizeof(float));
    }
    rows = B;
  }
  norm(x.data(), x.data(), rows, d, final_norm_);
  matmul(x.data(), rows, d, *embed_, logits);  // tied head: h E^T
  if (c.final_softcap > 0) cpu::softcap(DType::kF32, logits, logits, rows * c.vocab, c.final_softcap);
}

std::shared_ptr<GemmaModel> load_gemma(const std::string& path) {
  // A HF checkpoint's config comes first, so that a folder without one says so.
  const bool folder = is_directory(path);
  ModelConfig config;
  if (folder || !ends_with(path, ".gguf")) config = config_from_hf_file((folder ? path : parent_dir(path)) + "/config.json");
  auto weights = std::make_shared<const WeightFile>(open_weights(path));
  if (weights->format == "gguf") config = config_from_gguf(*weights);
  return std::make_shared<GemmaModel>(std::move(config), std::move(weights));
}

}  // namespace gemmacpp
