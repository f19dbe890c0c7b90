#include "csrc/cpu/rg_lru.h"

#include <cmath>
#include <cstring>

#include "csrc/core/threads.h"
#include "csrc/cpu/dtype_dispatch.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/rg_lru.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "csrc/cpu/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

// e^x for x in [-87, 88] as scale * (1 + p): x = q ln2 + r with integer q and |r| <= ln2 / 2,
// scale = 2^q (a normal float for these q) and p = e^r - 1 (Taylor to r^7: < 2e-8 relative).
// Keeping p apart gives e^x - 1 = scale p + (scale - 1) without cancellation near 0. Cheaper than
// a general exp: the clamped range needs no overflow or subnormal handling.
template <class DF, class V>
HWY_INLINE void ExpParts(DF df, V x, V& scale, V& p) {
  const hn::RebindToSigned<DF> di;
  const V q = hn::Round(hn::Mul(x, hn::Set(df, 1.44269504088896341f)));
  // ln 2 = 0.693359375 - 2.12194440e-4; the first part has 9 bits, so q times it is exact.
  V r = hn::MulAdd(q, hn::Set(df, -0.693359375f), x);
  r = hn::MulAdd(q, hn::Set(df, 2.12194440e-4f), r);
  V t = hn::Set(df, 1.0f / 5040);
  t = hn::MulAdd(t, r, hn::Set(df, 1.0f / 720));
  t = hn::MulAdd(t, r, hn::Set(df, 1.0f / 120));
  t = hn::MulAdd(t, r, hn::Set(df, 1.0f / 24));
  t = hn::MulAdd(t, r, hn::Set(df, 1.0f / 6));
  t = hn::MulAdd(t, r, hn::Set(df, 0.5f));
  t = hn::MulAdd(t, r, hn::Set(df, 1.0f));
  p = hn::Mul(t, r);
  scale = hn::BitCast(df, hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, q), hn::Set(di, 127))));
}

// Both gates' sigmoids, 1 / (1 + e^-v), with one division: 1/(A B) times B and times A. Logits
// are clamped to [-40, 87] (sigmoid(-40) ~ 4e-18, as good as 0 here), which keeps A B < 6e34.
template <class DF, class V>
HWY_INLINE void Sigmoid2(DF df, V gx, V ga, V& i, V& r) {
  const V one = hn::Set(df, 1.0f), lo = hn::Set(df, -40.0f), hi = hn::Set(df, 87.0f);
  V sa, pa, sb, pb;
  ExpParts(df, hn::Neg(hn::Min(hn::Max(gx, lo), hi)), sa, pa);
  ExpParts(df, hn::Neg(hn::Min(hn::Max(ga, lo), hi)), sb, pb);
  const V A = hn::Add(one, hn::MulAdd(sa, pa, sa));
  const V B = hn::Add(one, hn::MulAdd(sb, pb, sb));
  const V inv = hn::Div(one, hn::Mul(A, B));
  i = hn::Mul(B, inv);
  r = hn::Mul(A, inv);
}

// One RG-LRU step for one vector of lanes; returns h_t. neg_csp = -c * softplus(a_param).
// With e = e^(log a) - 1: a = 1 + e, and 1 - a^2 = -e (2 + e), which keeps its relative
// precision when a is close to 1 (long memories), where 1 - a*a would cancel.
template <class DF, class V>
HWY_INLINE V Step(DF df, V x, V gx, V ga, V neg_csp, V h, bool reset) {
  V i, r;
  Sigmoid2(df, gx, ga, i, r);
  const V gated = hn::Mul(x, i);
  if (reset) return gated;  // a = 0, sqrt factor 1
  const V one = hn::Set(df, 1.0f);
  V s, p;
  ExpParts(df, hn::Max(hn::Mul(neg_csp, r), hn::Set(df, -87.0f)), s, p);
  const V e = hn::MulAdd(s, p, hn::Sub(s, one));
  const V a = hn::Add(e, one);
  const V one_minus_a2 = hn::Max(hn::Neg(hn::Mul(e, hn::Add(e, hn::Set(df, 2.0f)))), hn::Zero(df));
  return hn::MulAdd(a, h, hn::Mul(gated, hn::Sqrt(one_minus_a2)));
}

// The scan for one batch row and n lanes of the width: x, gx, ga, y point at [t = 0, w0], rows W
// apart. h (n floats) holds the state before t = 0 and receives the state after the last step.
template <class T>
void ScanRows(const T* x, const T* gx, const T* ga, T* y, int64_t steps, int64_t W,
              const uint8_t* reset, const float* neg_csp, float* h, size_t n) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  for (int64_t t = 0; t < steps; ++t) {
    const size_t row = size_t(t * W);
    const bool r = reset && reset[t];
    size_t i = 0;
    for (; i + N <= n; i += N) {
      const auto hv = Step(df, LoadF32(df, x + row + i), LoadF32(df, gx + row + i),
                           LoadF32(df, ga + row + i), hn::LoadU(df, neg_csp + i),
                           hn::LoadU(df, h + i), r);
      hn::StoreU(hv, df, h + i);
      StoreF32(df, hv, y + row + i);
    }
    if (i < n) {
      const size_t m = n - i;
      const auto hv = Step(df, LoadF32Partial(df, x + row + i, m),
                           LoadF32Partial(df, gx + row + i, m), LoadF32Partial(df, ga + row + i, m),
                           LoadF32Partial(df, neg_csp + i, m), LoadF32Partial(df, h + i, m), r);
      StoreF32Partial(df, hv, h + i, m);
      StoreF32Partial(df, hv, y + row + i, m);
    }
  }
}

void RgLruScan(DType dt, const void* x, const void* gx, const void* ga, void* y, int64_t steps,
               int64_t W, const uint8_t* reset, const float* neg_csp, float* h, size_t n) {
  visit_float(dt, [&](auto tag) {
    using T = decltype(tag);
    ScanRows(static_cast<const T*>(x), static_cast<const T*>(gx), static_cast<const T*>(ga),
             static_cast<T*>(y), steps, W, reset, neg_csp, h, n);
  });
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(RgLruScan);

namespace {

// Lanes of the width per task: about 1024 (4 KiB of float32 per row and array, long enough runs
// for the prefetchers as the scan strides through time; 256-lane chunks ran 25% slower), split
// evenly and rounded to a multiple of every vector length, so at most kMaxChunk. The split depends
// on W only (and no lane's result depends on it).
constexpr int64_t kTargetChunk = 1024, kMaxChunk = 2 * kTargetChunk;
int64_t width_chunk(int64_t W) {
  const int64_t n = W / kTargetChunk > 1 ? W / kTargetChunk : 1;
  return ((W + n - 1) / n + 15) / 16 * 16;
}

float scalar_f32(DType dt, const void* p, int64_t i) {
  switch (dt) {
    case DType::kF32: return static_cast<const float*>(p)[i];
    case DType::kF16: case DType::kBF16: {
      uint16_t h;
      std::memcpy(&h, static_cast<const char*>(p) + 2 * i, 2);
      return dt == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
    default: throw TypeError(str_cat("rg_lru: no CPU kernel for dtype ", dtype_name(dt)));
  }
}

// softplus(p) = log(1 + e^p), in double so that large and small p both stay exact to float.
float softplus(float p) {
  const double d = p;
  return float(d > 30 ? d : std::log1p(std::exp(d)));
}

}  // namespace

void rg_lru(const RgLruArgs& a) {
  const int64_t chunk = width_chunk(a.W), n_chunks = (a.W + chunk - 1) / chunk;
  const int64_t es = dtype_size(a.dtype);
  parallel_for(a.B * n_chunks, [&](int64_t task, int) {
    const int64_t b = task / n_chunks, w0 = (task % n_chunks) * chunk;
    const int64_t n = a.W - w0 < chunk ? a.W - w0 : chunk;
    alignas(64) float neg_csp[kMaxChunk], h[kMaxChunk];
    for (int64_t i = 0; i < n; ++i) {
      neg_csp[i] = -a.c * softplus(scalar_f32(a.a_dtype, a.a_param, w0 + i));
      h[i] = a.h0 ? scalar_f32(a.h0_dtype, a.h0, b * a.W + w0 + i) : 0.0f;
    }
    const int64_t off = (b * a.T * a.W + w0) * es;
    HWY_DYNAMIC_DISPATCH(RgLruScan)(
        a.dtype, static_cast<const char*>(a.x) + off, static_cast<const char*>(a.gate_x) + off,
        static_cast<const char*>(a.gate_a) + off, static_cast<char*>(a.y) + off, a.T, a.W,
        a.reset ? a.reset + b * a.T : nullptr, neg_csp, h, size_t(n));
    if (a.h_last) std::memcpy(a.h_last + b * a.W + w0, h, size_t(n) * sizeof(float));
  });
}

}  // namespace gemmacpp::cpu
#endif
