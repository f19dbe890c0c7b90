#include "csrc/models/griffin/griffin.h"

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
#include "csrc/nn/weight_ops.h"
#include "csrc/nn/packed_batch.h"
#include "csrc/nn/rg_lru_weights.h"
#include "csrc/nn/sequence_attention.h"
#include "csrc/nn/tied_head.h"

namespace gemmacpp {
namespace {

using model_ops::dense_weight;
using model_ops::to_f32;

// Per-call buffers of one forward pass over M packed rows.
struct Activations {
  std::vector<float> x, h, mix;                 // [M, d]: residual stream, normed, block output
  std::vector<float> y, u, conv, gx, ga, lru;   // [M, L]: recurrent block
  std::vector<float> q, k, v, o;                // attention
  std::vector<float> gate, up;                  // [M, F]
  std::vector<int64_t> positions;               // [M]
  std::vector<uint8_t> reset;                   // [M]: segment start at position 0
  std::vector<float> k_win, v_win;              // an attention block's window in position order
};

void norm(const ModelConfig& c, const float* in, float* out, int64_t rows, const WeightTensor& w) {
  cpu::rms_norm(DType::kF32, in, out, rows, c.d, w.dtype, w.data, float(c.norm_eps), true);
}

const float* bias_or_null(const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); }

// Runs fn(b0, nb, r0, n) over groups of rows whose recurrences can go through a kernel together:
// all rows at once (nb = B, n = T rows each) when they have the same count, else one row at a
// time (nb = 1), skipping empty rows. Every lane of the kernels is computed alone, so both give
// the same bits.
template <class Fn>
void for_row_groups(const PackedBatch& p, Fn fn) {
  if (p.uniform) {
    if (p.count[0] > 0) fn(int64_t(0), p.B, int64_t(0), p.count[0]);
    return;
  }
  for (int64_t b = 0; b < p.B; ++b) {
    if (p.count[size_t(b)] > 0) fn(b, int64_t(1), p.offset[size_t(b)], p.count[size_t(b)]);
  }
}

// h -> mix: y = gelu(W_y h); u = conv1d(W_x h); u = rg_lru(u); mix = W_o (u * y).
void recurrent_block(const ModelConfig& c, const GriffinLayerWeights& w, const PackedBatch& p,
                     Activations& a, GriffinLayerState* state, const PackedHooks& offer, int64_t li) {
  const int64_t M = p.M, L = c.lru_width, H = c.n_heads, bw = L / H, K = c.conv1d_width;
  model_ops::linear(a.h.data(), M, *w.linear_y, w.linear_y_b.data(), a.y.data());
  model_ops::linear(a.h.data(), M, *w.linear_x, w.linear_x_b.data(), a.u.data());

  // The conv and the scan carry state along time: each sequence goes over its own rows only.
  for_row_groups(p, [&](int64_t b0, int64_t nb, int64_t r0, int64_t n) {
    cpu::Conv1dTemporalArgs ca;
    ca.dtype = DType::kF32;
    ca.x = a.u.data() + r0 * L;
    float* st = state ? state->conv.data() + b0 * (K - 1) * L : nullptr;
    ca.state = st;
    ca.weight = w.conv_w.data();
    ca.bias = w.conv_b.data();
    ca.reset = a.reset.data() + r0;
    ca.y = a.conv.data() + r0 * L;
    ca.new_state = st;
    ca.B = nb; ca.T = n; ca.W = L; ca.K = K;
    cpu::conv1d_temporal(ca);
  });
  offer(HookPoint::kConvOut, li, a.conv.data(), {L});

  // Block-diagonal gate projections: one x W^T product per head on its slice of the width.
  const int64_t es = dtype_size(w.gate_dtype);
  for (int64_t hd = 0; hd < H; ++hd) {
    const int64_t off = hd * bw;
    cpu::linear(a.conv.data() + off, L, M, bw, w.gate_dtype, w.gate_x_w.data() + off * bw * es, bw,
                bw, w.gate_x_b.data() + off, a.gx.data() + off, L);
    cpu::linear(a.conv.data() + off, L, M, bw, w.gate_dtype, w.gate_a_w.data() + off * bw * es, bw,
                bw, w.gate_a_b.data() + off, a.ga.data() + off, L);
  }

  // blocks.{i}.rglru.hook_a: the fused kernel keeps a_t in registers, so it is formed here only
  // for a hook; when the hook changes it, the scan runs on the edited values instead.
  constexpr float kC = 8.0f;  // Griffin's fixed scale of log a
  std::vector<float> a_t;
  bool a_edited = false;
  if (offer.wants(HookPoint::kRgLruA, li)) {
    a_t = rg_lru_weights::recurrence_weights(a.ga.data(), a.reset.data(), M, L, *w.a_param, kC);
    const std::vector<float> before = a_t;
    offer(HookPoint::kRgLruA, li, a_t.data(), {L});
    a_edited = a_t != before;
  }

  for_row_groups(p, [&](int64_t b0, int64_t nb, int64_t r0, int64_t n) {
    float* h = state ? state->h.data() + b0 * L : nullptr;
    if (a_edited) {
      rg_lru_weights::scan(a_t.data() + r0 * L, a.conv.data() + r0 * L, a.gx.data() + r0 * L, nb,
                           n, L, h, a.lru.data() + r0 * L, h);
      return;
    }
    cpu::RgLruArgs ra;
    ra.dtype = DType::kF32;
    ra.x = a.conv.data() + r0 * L; ra.gate_x = a.gx.data() + r0 * L; ra.gate_a = a.ga.data() + r0 * L;
    ra.a_dtype = w.a_param->dtype; ra.a_param = w.a_param->data;
    ra.h0 = h;
    ra.reset = a.reset.data() + r0;
    ra.y = a.lru.data() + r0 * L;
    ra.h_last = h;
    ra.B = nb; ra.T = n; ra.W = L; ra.c = kC;
    cpu::rg_lru(ra);
  });
  offer(HookPoint::kRgLruH, li, a.lru.data(), {L});

  cpu::geglu(DType::kF32, a.y.data(), a.lru.data(), a.y.data(), M * L);  // gelu(y) * u
  model_ops::linear(a.y.data(), M, *w.linear_out, w.linear_out_b.data(), a.mix.data());
}

// h -> mix: local MQA attention over the window, partial RoPE, output projection with bias.
void attention_block(const ModelConfig& c, const LayerConfig& lc, const GriffinLayerWeights& w,
                     const PackedBatch& p, Activations& a, GriffinLayerState* state) {
  const int64_t M = p.M, H = c.n_heads, K = c.n_kv_heads, D = c.head_dim, R = K * D;
  model_ops::linear(a.h.data(), M, *w.q, bias_or_null(w.q_b), a.q.data());
  model_ops::linear(a.h.data(), M, *w.k, bias_or_null(w.k_b), a.k.data());
  model_ops::linear(a.h.data(), M, *w.v, bias_or_null(w.v_b), a.v.data());
  // Packed rows as one sequence of M tokens, each with its own position.
  cpu::rope(DType::kF32, a.q.data(), a.q.data(), 1, M, H, D, DType::kI64, a.positions.data(), false,
            lc.rope_base, 1.0, c.rotary_dim);
  cpu::rope(DType::kF32, a.k.data(), a.k.data(), 1, M, K, D, DType::kI64, a.positions.data(), false,
            lc.rope_base, 1.0, c.rotary_dim);

  // One sequence at a time: each sees only its own keys.
  for (int64_t b = 0; b < p.B; ++b) {
    const int64_t n = p.count[size_t(b)], r0 = p.offset[size_t(b)], pos0 = p.start[size_t(b)];
    if (n == 0) continue;
    cpu::AttentionArgs at = packed_sequence_attention(a.q.data(), a.o.data(), a.k.data(), a.v.data(), r0, n, H, K, D);
    at.window = lc.window;
    at.scale = c.attn_scale();
    if (state) {
      const int64_t W = state->window;
      ring_window(state->k.data() + b * W * R, state->v.data() + b * W * R, W, pos0, a.k.data() + r0 * R,
                  a.v.data() + r0 * R, n, R, a.k_win, a.v_win, at);
    }
    cpu::attention(at);
  }
  model_ops::linear(a.o.data(), M, *w.o, w.o_b.data(), a.mix.data());
}

void mlp_block(const ModelConfig& c, const GriffinLayerWeights& w, int64_t M, Activations& a,
               const PackedHooks& offer, int64_t li) {
  model_ops::linear(a.h.data(), M, *w.gate, w.gate_b.data(), a.gate.data());
  model_ops::linear(a.h.data(), M, *w.up, w.up_b.data(), a.up.data());
  offer(HookPoint::kMlpPre, li, a.gate.data(), {c.ffn});
  offer(HookPoint::kMlpPreLinear, li, a.up.data(), {c.ffn});
  cpu::geglu(DType::kF32, a.gate.data(), a.up.data(), a.gate.data(), M * c.ffn);
  offer(HookPoint::kMlpPost, li, a.gate.data(), {c.ffn});
  model_ops::linear(a.gate.data(), M, *w.down, w.down_b.data(), a.mix.data());
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

void GriffinModel::forward(const Args& args) const {
  const ModelConfig& c = config_;
  GriffinCache* cache = args.cache;
  // A Griffin cache has one size whatever the length: its max_len bounds nothing.
  const PackedBatch p(args.B, args.T, args.lengths, c.n_layers, cache_extent(cache, /*bounded=*/false));
  const int64_t B = p.B, M = p.M, d = c.d, L = c.lru_width, V = c.vocab;
  const std::vector<int64_t> ids = p.ids(args.tokens, V);
  Activations a;
  a.positions = p.positions();
  a.reset.resize(size_t(M));
  // Position 0 starts a segment: the RG-LRU forgets h0 there and skips its input scaling.
  for (int64_t r = 0; r < M; ++r) a.reset[size_t(r)] = a.positions[size_t(r)] == 0;
  if (M == 0) {
    std::memset(args.logits, 0, size_t((args.last_only ? B : B * p.T) * V) * sizeof(float));
    return;
  }
  a.x.resize(size_t(M * d)); a.h.resize(a.x.size()); a.mix.resize(a.x.size());
  for (auto* v : {&a.y, &a.u, &a.conv, &a.gx, &a.ga, &a.lru}) v->resize(size_t(M * L));
  a.q.resize(size_t(M * c.n_heads * c.head_dim)); a.o.resize(a.q.size());
  a.k.resize(size_t(M * c.n_kv_heads * c.head_dim)); a.v.resize(a.k.size());
  a.gate.resize(size_t(M * c.ffn)); a.up.resize(a.gate.size());
  const PackedHooks offer(args.hooks, p);

  model_ops::embed_rows(*embed_, ids.data(), M, c.embed_scale, a.x.data());
  offer(HookPoint::kEmbed, -1, a.x.data(), {d});
  for (int64_t li = 0; li < c.n_layers; ++li) {
    const GriffinLayerWeights& w = layers_[size_t(li)];
    const LayerConfig& lc = c.layers[size_t(li)];
    GriffinLayerState* state = cache ? &cache->layers()[size_t(li)] : nullptr;
    offer(HookPoint::kResidPre, li, a.x.data(), {d});
    norm(c, a.x.data(), a.h.data(), M, *w.temporal_norm);
    if (lc.recurrent) {
      recurrent_block(c, w, p, a, state, offer, li);
    } else {
      attention_block(c, lc, w, p, a, state);
      offer(HookPoint::kAttnOut, li, a.mix.data(), {d});
    }
    model_ops::add_into(a.x.data(), a.mix.data(), M * d);
    offer(HookPoint::kResidMid, li, a.x.data(), {d});
    norm(c, a.x.data(), a.h.data(), M, *w.channel_norm);
    mlp_block(c, w, M, a, offer, li);
    offer(HookPoint::kMlpOut, li, a.mix.data(), {d});
    model_ops::add_into(a.x.data(), a.mix.data(), M * d);
    offer(HookPoint::kResidPost, li, a.x.data(), {d});
  }
  if (cache) {
    for (int64_t b = 0; b < B; ++b) cache->advance(b, p.count[size_t(b)]);
  }
  tied_head(p, args.last_only, a.x.data(), *final_norm_, float(c.norm_eps), /*unit_offset=*/true,
            *embed_, c.final_softcap, args.hooks, args.logits);
}

std::vector<std::string> GriffinModel::hook_names() const {
  std::vector<std::string> out = {hook_name(HookPoint::kEmbed, -1)};
  for (int64_t i = 0; i < config_.n_layers; ++i) {
    std::vector<HookPoint> mixing = {HookPoint::kConvOut, HookPoint::kRgLruA,
                                    HookPoint::kRgLruH};
    if (!config_.layers[size_t(i)].recurrent) mixing = {HookPoint::kAttnOut};
    out.push_back(hook_name(HookPoint::kResidPre, i));
    for (HookPoint p : mixing) out.push_back(hook_name(p, i));
    for (HookPoint p : {HookPoint::kResidMid, HookPoint::kMlpPre, HookPoint::kMlpPreLinear,
                        HookPoint::kMlpPost, HookPoint::kMlpOut, HookPoint::kResidPost}) {
      out.push_back(hook_name(p, i));
    }
  }
  out.push_back(hook_name(HookPoint::kFinalNorm, -1));
  out.push_back(hook_name(HookPoint::kLogits, -1));
  return out;
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
