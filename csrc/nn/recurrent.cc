#include "csrc/nn/recurrent.h"

#include <cstring>

#include "csrc/core/error.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {
namespace {

constexpr float kC = 8.0f;  // Griffin's fixed scale of log a

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

}  // namespace

RecurrentBlock::RecurrentBlock(const Scope& s, int64_t d, int64_t width, int64_t heads, int64_t conv_width,
                               int64_t layer)
    : width_(width), heads_(heads), conv_width_(conv_width), layer_(layer) {
  const WeightBinder& w = s.weights;
  const int64_t L = width, H = heads, bw = L / H, K = conv_width;
  linear_x_ = Linear(w, s.name("linear_x.weight"), L, d, s.name("linear_x.bias"));
  linear_y_ = Linear(w, s.name("linear_y.weight"), L, d, s.name("linear_y.bias"));
  linear_out_ = Linear(w, s.name("linear_out.weight"), d, L, s.name("linear_out.bias"));
  const std::vector<float> conv = w.f32(s.name("conv.weight"), {L, 1, K});
  conv_w_.resize(size_t(K * L));
  for (int64_t ch = 0; ch < L; ++ch) {
    for (int64_t k = 0; k < K; ++k) conv_w_[size_t(k * L + ch)] = conv[size_t(ch * K + k)];
  }
  conv_b_ = w.f32(s.name("conv.bias"), {L});
  a_param_ = &w.dense(s.name("rglru.a_param"), {L});
  const WeightTensor& gx = w.dense(s.name("rglru.gate_x.weight"), {H, bw, bw});
  const WeightTensor& ga = w.dense(s.name("rglru.gate_a.weight"), {H, bw, bw});
  GC_CHECK(gx.dtype == ga.dtype, TypeError, "'", w.file().path, "': ", gx.name, " and ", ga.name,
           " have different dtypes");
  gate_dtype_ = gx.dtype;
  gate_x_w_ = transposed_heads(gx);
  gate_a_w_ = transposed_heads(ga);
  gate_x_b_ = w.f32(s.name("rglru.gate_x.bias"), {H, bw});
  gate_a_b_ = w.f32(s.name("rglru.gate_a.bias"), {H, bw});
  conv_site_ = s.site("conv.hook_out");
  a_site_ = s.site("rglru.hook_a");
  h_site_ = s.site("rglru.hook_h");
}

void RecurrentBlock::operator()(const Forward& f, const float* h, float* out) const {
  const PackedBatch& p = f.batch;
  const int64_t M = p.M, L = width_, H = heads_, bw = L / H, K = conv_width_;
  const Device dev = f.device;
  RecurrentSlot* state = f.cache ? &f.cache->recurrent(layer_) : nullptr;
  Workspace::Frame ws(*f.workspace);
  float* const y = ws.take(M * L);
  float* const u = ws.take(M * L);
  float* const conv = ws.take(M * L);
  float* const gx = ws.take(M * L);
  float* const ga = ws.take(M * L);
  float* const lru = ws.take(M * L);
  // Position 0 starts a segment: the RG-LRU forgets h0 there and skips its input scaling.
  std::vector<uint8_t> reset(static_cast<size_t>(M));
  for (int64_t r = 0; r < M; ++r) reset[size_t(r)] = f.positions[size_t(r)] == 0;

  linear_y_(dev, h, M, y);
  linear_x_(dev, h, M, u);
  // The conv and the scan carry state along time: each sequence goes over its own rows only.
  for_row_groups(p, [&](int64_t b0, int64_t nb, int64_t r0, int64_t n) {
    Conv1dTemporalArgs ca;
    ca.dtype = DType::kF32;
    ca.x = u + r0 * L;
    float* st = state ? state->conv.data() + b0 * (K - 1) * L : nullptr;
    ca.state = st;
    ca.weight = conv_w_.data();
    ca.bias = conv_b_.data();
    ca.reset = reset.data() + r0;
    ca.y = conv + r0 * L;
    ca.new_state = st;
    ca.B = nb, ca.T = n, ca.W = L, ca.K = K;
    ops::dispatch::conv1d_temporal(dev, ca);
  });
  f.offer(conv_site_, conv, {L});

  // Block-diagonal gate projections: one x W^T product per head on its slice of the width.
  const int64_t es = dtype_size(gate_dtype_);
  for (int64_t hd = 0; hd < H; ++hd) {
    const int64_t off = hd * bw;
    ops::dispatch::linear(dev, conv + off, L, M, bw, gate_dtype_, gate_x_w_.data() + off * bw * es, bw,
                          bw, gate_x_b_.data() + off, gx + off, L);
    ops::dispatch::linear(dev, conv + off, L, M, bw, gate_dtype_, gate_a_w_.data() + off * bw * es, bw,
                          bw, gate_a_b_.data() + off, ga + off, L);
  }

  std::vector<float> a_t;
  bool a_edited = false;
  if (f.offer.wants(a_site_)) {
    a_t = ops::dispatch::rg_lru_recurrence_weights(dev, ga, reset.data(), M, L, a_param_->dtype,
                                                   a_param_->data, kC);
    const std::vector<float> before = a_t;
    f.offer(a_site_, a_t.data(), {L});
    a_edited = a_t != before;
  }
  for_row_groups(p, [&](int64_t b0, int64_t nb, int64_t r0, int64_t n) {
    float* hs = state ? state->h.data() + b0 * L : nullptr;
    if (a_edited) {
      ops::dispatch::rg_lru_scan(dev, a_t.data() + r0 * L, conv + r0 * L, gx + r0 * L, nb, n,
                                 L, hs, lru + r0 * L, hs);
      return;
    }
    RgLruArgs ra;
    ra.dtype = DType::kF32;
    ra.x = conv + r0 * L;
    ra.gate_x = gx + r0 * L;
    ra.gate_a = ga + r0 * L;
    ra.a_dtype = a_param_->dtype;
    ra.a_param = a_param_->data;
    ra.h0 = hs;
    ra.reset = reset.data() + r0;
    ra.y = lru + r0 * L;
    ra.h_last = hs;
    ra.B = nb, ra.T = n, ra.W = L, ra.c = kC;
    ops::dispatch::rg_lru(dev, ra);
  });
  f.offer(h_site_, lru, {L});

  ops::dispatch::geglu(dev, DType::kF32, y, lru, y, M * L);  // gelu(y) * u
  linear_out_(dev, y, M, out);
}

}  // namespace gemmacpp::nn
