#include "csrc/models/griffin.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <utility>

#include "csrc/core/error.h"
#include "csrc/cpu/activation.h"
#include "csrc/cpu/attention.h"
#include "csrc/cpu/conv1d_temporal.h"
#include "csrc/cpu/linear.h"
#include "csrc/cpu/rg_lru.h"
#include "csrc/cpu/rms_norm.h"
#include "csrc/cpu/rope.h"
#include "csrc/cpu/softcap.h"
#include "csrc/models/model_ops.h"

namespace gemmacpp {
namespace {

using model_ops::dense_weight;
using model_ops::to_f32;

// Per-call buffers of one forward pass: M = B * T rows.
struct Activations {
  int64_t B, T, M;
  std::vector<float> x, h, mix;                 // [M, d]: residual stream, normed, block output
  std::vector<float> y, u, conv, gx, ga, lru;   // [M, L]: recurrent block
  std::vector<float> q, k, v, o;                // attention
  std::vector<float> gate, up;                  // [M, F]
  std::vector<int64_t> positions;               // [T]
  std::vector<uint8_t> reset;                   // [B, T]: segment start at position 0
  std::vector<float> k_win, v_win;              // an attention block's window in position order
};

void norm(const ModelConfig& c, const float* in, float* out, int64_t rows, const WeightTensor& w) {
  cpu::rms_norm(DType::kF32, in, out, rows, c.d, w.dtype, w.data, float(c.norm_eps), true);
}

const float* bias_or_null(const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); }

// h -> mix: y = gelu(W_y h); u = conv1d(W_x h); u = rg_lru(u); mix = W_o (u * y).
void recurrent_block(const ModelConfig& c, const GriffinLayerWeights& w, Activations& a,
                     GriffinLayerState* state) {
  const int64_t M = a.M, L = c.lru_width, H = c.n_heads, bw = L / H, K = c.conv1d_width;
  model_ops::linear(a.h.data(), M, *w.linear_y, w.linear_y_b.data(), a.y.data());
  model_ops::linear(a.h.data(), M, *w.linear_x, w.linear_x_b.data(), a.u.data());

  cpu::Conv1dTemporalArgs ca;
  ca.dtype = DType::kF32;
  ca.x = a.u.data();
  ca.state = state ? state->conv.data() : nullptr;
  ca.weight = w.conv_w.data();
  ca.bias = w.conv_b.data();
  ca.y = a.conv.data();
  ca.new_state = state ? state->conv.data() : nullptr;
  ca.B = a.B; ca.T = a.T; ca.W = L; ca.K = K;
  cpu::conv1d_temporal(ca);
  // hook point: blocks.{i}.conv.hook_out (a.conv, [B, T, L])

  // Block-diagonal gate projections: one x W^T product per head on its slice of the width.
  const int64_t es = dtype_size(w.gate_dtype);
  for (int64_t hd = 0; hd < H; ++hd) {
    const int64_t off = hd * bw;
    cpu::linear(a.conv.data() + off, L, M, bw, w.gate_dtype, w.gate_x_w.data() + off * bw * es, bw,
                bw, w.gate_x_b.data() + off, a.gx.data() + off, L);
    cpu::linear(a.conv.data() + off, L, M, bw, w.gate_dtype, w.gate_a_w.data() + off * bw * es, bw,
                bw, w.gate_a_b.data() + off, a.ga.data() + off, L);
  }

  cpu::RgLruArgs ra;
  ra.dtype = DType::kF32;
  ra.x = a.conv.data(); ra.gate_x = a.gx.data(); ra.gate_a = a.ga.data();
  ra.a_dtype = w.a_param->dtype; ra.a_param = w.a_param->data;
  ra.h0 = state ? state->h.data() : nullptr;
  ra.reset = a.reset.empty() ? nullptr : a.reset.data();
  ra.y = a.lru.data();
  ra.h_last = state ? state->h.data() : nullptr;
  ra.B = a.B; ra.T = a.T; ra.W = L; ra.c = 8.0f;
  cpu::rg_lru(ra);
  // hook points: blocks.{i}.rglru.hook_a (a_t, not materialised by the fused kernel) and
  // blocks.{i}.rglru.hook_h (a.lru, [B, T, L])

  cpu::geglu(DType::kF32, a.y.data(), a.lru.data(), a.y.data(), M * L);  // gelu(y) * u
  model_ops::linear(a.y.data(), M, *w.linear_out, w.linear_out_b.data(), a.mix.data());
}

// Copies rows [B, T, row] of src for t in [t0, T) to dst rows (dest(t) * B + b) * row.
template <class Dest>
void scatter_rows(const float* src, int64_t B, int64_t T, int64_t row, int64_t t0, Dest dest, float* dst) {
  for (int64_t t = t0; t < T; ++t) {
    for (int64_t b = 0; b < B; ++b) {
      std::memcpy(dst + (dest(t) * B + b) * row, src + (b * T + t) * row, size_t(row) * sizeof(float));
    }
  }
}

// h -> mix: local MQA attention over the window, partial RoPE, output projection with bias.
void attention_block(const ModelConfig& c, const LayerConfig& lc, const GriffinLayerWeights& w,
                     int64_t pos0, Activations& a, GriffinLayerState* state) {
  const int64_t B = a.B, T = a.T, M = a.M, H = c.n_heads, K = c.n_kv_heads, D = c.head_dim;
  model_ops::linear(a.h.data(), M, *w.q, bias_or_null(w.q_b), a.q.data());
  model_ops::linear(a.h.data(), M, *w.k, bias_or_null(w.k_b), a.k.data());
  model_ops::linear(a.h.data(), M, *w.v, bias_or_null(w.v_b), a.v.data());
  cpu::rope(DType::kF32, a.q.data(), a.q.data(), B, T, H, D, DType::kI64, a.positions.data(), false,
            lc.rope_base, 1.0, c.rotary_dim);
  cpu::rope(DType::kF32, a.k.data(), a.k.data(), B, T, K, D, DType::kI64, a.positions.data(), false,
            lc.rope_base, 1.0, c.rotary_dim);

  cpu::AttentionArgs at;
  at.dtype = DType::kF32;
  at.q = a.q.data(); at.k = a.k.data(); at.v = a.v.data(); at.out = a.o.data();
  at.B = B; at.Tq = T; at.Tk = T; at.Hq = H; at.Hkv = K; at.D = D;
  const int64_t qs[3] = {T * H * D, H * D, D}, ks[3] = {T * K * D, K * D, D};
  for (int j = 0; j < 3; ++j) {
    at.q_stride[j] = at.out_stride[j] = qs[j];
    at.k_stride[j] = at.v_stride[j] = ks[j];
  }
  at.causal = true;
  at.window = lc.window;
  at.scale = c.attn_scale();
  if (state) {
    // The ring's older keys in position order, then the new ones: one contiguous run of rows
    // [pos][B][K*D] for the kernel, which only needs relative positions.
    const int64_t W = state->window, R = B * K * D, n_old = std::min(W - 1, pos0);
    a.k_win.resize(size_t((n_old + T) * R));
    a.v_win.resize(size_t((n_old + T) * R));
    for (int64_t j = 0; j < n_old; ++j) {
      const int64_t src = (pos0 - n_old + j) % W;
      std::memcpy(a.k_win.data() + j * R, state->k.data() + src * R, size_t(R) * sizeof(float));
      std::memcpy(a.v_win.data() + j * R, state->v.data() + src * R, size_t(R) * sizeof(float));
    }
    auto after_old = [n_old](int64_t t) { return n_old + t; };
    scatter_rows(a.k.data(), B, T, K * D, 0, after_old, a.k_win.data());
    scatter_rows(a.v.data(), B, T, K * D, 0, after_old, a.v_win.data());
    // Only the last W new positions can be seen again.
    auto ring = [pos0, W](int64_t t) { return (pos0 + t) % W; };
    scatter_rows(a.k.data(), B, T, K * D, std::max<int64_t>(0, T - W), ring, state->k.data());
    scatter_rows(a.v.data(), B, T, K * D, std::max<int64_t>(0, T - W), ring, state->v.data());
    at.k = a.k_win.data(); at.v = a.v_win.data();
    at.Tk = n_old + T;
    at.q_start = n_old;
    at.k_stride[0] = at.v_stride[0] = K * D;
    at.k_stride[1] = at.v_stride[1] = R;
  }
  cpu::attention(at);
  model_ops::linear(a.o.data(), M, *w.o, w.o_b.data(), a.mix.data());
}

void mlp_block(const ModelConfig& c, const GriffinLayerWeights& w, Activations& a) {
  model_ops::linear(a.h.data(), a.M, *w.gate, w.gate_b.data(), a.gate.data());
  model_ops::linear(a.h.data(), a.M, *w.up, w.up_b.data(), a.up.data());
  cpu::geglu(DType::kF32, a.gate.data(), a.up.data(), a.gate.data(), a.M * c.ffn);
  model_ops::linear(a.gate.data(), a.M, *w.down, w.down_b.data(), a.mix.data());
}

// HF's [H, in, out] gate matrices as [H, out, in], in their stored dtype.
std::vector<uint8_t> transposed_heads(const WeightTensor& t) {
  const int64_t H = t.shape[0], n = t.shape[1], es = dtype_size(t.dtype);
  std::vector<uint8_t> out(size_t(t.nbytes));
  for (int64_t hd = 0; hd < H; ++hd) {
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t o = 0; o < n; ++o) {
        std::memcpy(out.data() + ((hd * n + o) * n + i) * es, t.data + ((hd * n + i) * n + o) * es,
                    size_t(es));
      }
    }
  }
  return out;
}

}  // namespace

GriffinModel::GriffinModel(ModelConfig config, std::shared_ptr<const WeightFile> weights)
    : config_(std::move(config)), weights_(std::move(weights)) {
  const ModelConfig& c = config_;
  c.validate();
  GC_CHECK(c.family == "recurrent_gemma", ValueError, "GriffinModel: the config is for ", c.family,
           ", not recurrent_gemma");
  const WeightFile& f = *weights_;
  GC_CHECK(f.format == "safetensors", NotImplementedError, "'", f.path,
           "': RecurrentGemma loads from HF safetensors checkpoints only");
  const int64_t d = c.d, L = c.lru_width, H = c.n_heads, bw = L / H, K = c.conv1d_width;
  const int64_t qd = H * c.head_dim, kvd = c.n_kv_heads * c.head_dim, F = c.ffn;
  auto get = [&](const std::string& name, std::vector<int64_t> shape) {
    return &dense_weight(f, "model." + name, shape);
  };
  auto bias = [&](const std::string& name, int64_t n) { return to_f32(*get(name, {n})); };
  embed_ = get("embed_tokens.weight", {c.vocab, d});
  final_norm_ = get("final_norm.weight", {d});
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string l = "layers." + std::to_string(i) + ".", tb = l + "temporal_block.";
    GriffinLayerWeights w;
    w.temporal_norm = get(l + "temporal_pre_norm.weight", {d});
    w.channel_norm = get(l + "channel_pre_norm.weight", {d});
    if (c.layers[size_t(i)].recurrent) {
      w.linear_x = get(tb + "linear_x.weight", {L, d});
      w.linear_y = get(tb + "linear_y.weight", {L, d});
      w.linear_out = get(tb + "linear_out.weight", {d, L});
      w.linear_x_b = bias(tb + "linear_x.bias", L);
      w.linear_y_b = bias(tb + "linear_y.bias", L);
      w.linear_out_b = bias(tb + "linear_out.bias", d);
      const std::vector<float> conv = to_f32(*get(tb + "conv_1d.weight", {L, 1, K}));
      w.conv_w.resize(size_t(K * L));
      for (int64_t ch = 0; ch < L; ++ch) {
        for (int64_t k = 0; k < K; ++k) w.conv_w[size_t(k * L + ch)] = conv[size_t(ch * K + k)];
      }
      w.conv_b = bias(tb + "conv_1d.bias", L);
      w.a_param = get(tb + "rg_lru.recurrent_param", {L});
      const WeightTensor* gx = get(tb + "rg_lru.input_gate_weight", {H, bw, bw});
      const WeightTensor* ga = get(tb + "rg_lru.recurrent_gate_weight", {H, bw, bw});
      GC_CHECK(gx->dtype == ga->dtype, TypeError, "'", f.path, "': the gate weights of layer ", i,
               " have different dtypes");
      w.gate_dtype = gx->dtype;
      w.gate_x_w = transposed_heads(*gx);
      w.gate_a_w = transposed_heads(*ga);
      w.gate_x_b = to_f32(*get(tb + "rg_lru.input_gate_bias", {H, bw}));
      w.gate_a_b = to_f32(*get(tb + "rg_lru.recurrent_gate_bias", {H, bw}));
    } else {
      w.q = get(tb + "q_proj.weight", {qd, d});
      w.k = get(tb + "k_proj.weight", {kvd, d});
      w.v = get(tb + "v_proj.weight", {kvd, d});
      w.o = get(tb + "o_proj.weight", {d, qd});
      w.o_b = bias(tb + "o_proj.bias", d);
      if (c.attn_bias) {
        w.q_b = bias(tb + "q_proj.bias", qd);
        w.k_b = bias(tb + "k_proj.bias", kvd);
        w.v_b = bias(tb + "v_proj.bias", kvd);
      }
    }
    w.gate = get(l + "mlp_block.gate_proj.weight", {F, d});
    w.up = get(l + "mlp_block.up_proj.weight", {F, d});
    w.down = get(l + "mlp_block.down_proj.weight", {d, F});
    w.gate_b = bias(l + "mlp_block.gate_proj.bias", F);
    w.up_b = bias(l + "mlp_block.up_proj.bias", F);
    w.down_b = bias(l + "mlp_block.down_proj.bias", d);
    layers_.push_back(std::move(w));
  }
}

void GriffinModel::forward(const int64_t* tokens, int64_t B, int64_t T, float* logits,
                           GriffinCache* cache, bool last_only) const {
  const ModelConfig& c = config_;
  GC_CHECK(B >= 1 && T >= 1, ValueError, "forward: tokens must be a non-empty [B, T] batch, got [",
           B, ", ", T, "]");
  for (int64_t i = 0; i < B * T; ++i) {
    GC_CHECK(tokens[i] >= 0 && tokens[i] < c.vocab, ValueError, "forward: token id ", tokens[i],
             " is out of range [0, ", c.vocab, ")");
  }
  if (cache) {
    GC_CHECK(cache->batch() == B, ValueError, "forward: the cache holds ", cache->batch(),
             " sequences, tokens have ", B);
    GC_CHECK(int64_t(cache->layers().size()) == c.n_layers, ValueError,
             "forward: the cache was made for a model with ", cache->layers().size(), " layers");
  }
  const int64_t pos0 = cache ? cache->length() : 0;
  const int64_t M = B * T, d = c.d, L = c.lru_width;
  Activations a;
  a.B = B; a.T = T; a.M = M;
  a.x.resize(size_t(M * d)); a.h.resize(a.x.size()); a.mix.resize(a.x.size());
  for (auto* v : {&a.y, &a.u, &a.conv, &a.gx, &a.ga, &a.lru}) v->resize(size_t(M * L));
  a.q.resize(size_t(M * c.n_heads * c.head_dim)); a.o.resize(a.q.size());
  a.k.resize(size_t(M * c.n_kv_heads * c.head_dim)); a.v.resize(a.k.size());
  a.gate.resize(size_t(M * c.ffn)); a.up.resize(a.gate.size());
  for (int64_t t = 0; t < T; ++t) a.positions.push_back(pos0 + t);
  if (pos0 == 0) {  // position 0 starts a segment: the RG-LRU forgets h0 there
    a.reset.assign(size_t(M), 0);
    for (int64_t b = 0; b < B; ++b) a.reset[size_t(b * T)] = 1;
  }

  model_ops::embed_rows(*embed_, tokens, M, c.embed_scale, a.x.data());
  for (int64_t li = 0; li < c.n_layers; ++li) {
    const GriffinLayerWeights& w = layers_[size_t(li)];
    const LayerConfig& lc = c.layers[size_t(li)];
    GriffinLayerState* state = cache ? &cache->layers()[size_t(li)] : nullptr;
    norm(c, a.x.data(), a.h.data(), M, *w.temporal_norm);
    if (lc.recurrent) recurrent_block(c, w, a, state);
    else attention_block(c, lc, w, pos0, a, state);
    model_ops::add_into(a.x.data(), a.mix.data(), M * d);
    norm(c, a.x.data(), a.h.data(), M, *w.channel_norm);
    mlp_block(c, w, a);
    model_ops::add_into(a.x.data(), a.mix.data(), M * d);
    // hook point: blocks.{i}.hook_resid_post (a.x, [B, T, d])
  }
  if (cache) cache->advance(T);
  // The head only on the rows whose logits are wanted (one per sequence when decoding).
  const int64_t rows = last_only ? B : M;
  if (last_only) {
    for (int64_t b = 0; b < B; ++b) {
      std::memcpy(a.h.data() + b * d, a.x.data() + (b * T + T - 1) * d, size_t(d) * sizeof(float));
    }
  } else {
    a.h.swap(a.x);
  }
  norm(c, a.h.data(), a.h.data(), rows, *final_norm_);
  model_ops::linear(a.h.data(), rows, *embed_, nullptr, logits);  // tied head: h E^T
  if (c.final_softcap > 0) cpu::softcap(DType::kF32, logits, logits, rows * c.vocab, c.final_softcap);
}

std::shared_ptr<GriffinModel> load_griffin(const std::string& path) {
  namespace fs = std::filesystem;
  const bool folder = fs::is_directory(path);
  const fs::path dir = folder ? fs::path(path) : fs::path(path).parent_path();
  ModelConfig config = config_from_hf_file(((dir.empty() ? fs::path(".") : dir) / "config.json").string());
  GC_CHECK(config.family == "recurrent_gemma", ValueError, "load_griffin: '", path,
           "' holds a ", config.family, " model, not recurrent_gemma");
  auto weights = std::make_shared<const WeightFile>(open_weights(path));
  return std::make_shared<GriffinModel>(std::move(config), std::move(weights));
}

}  // namespace gemmacpp
