#include "csrc/cpu/rg_lru.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "csrc/core/threads.h"
#include "csrc/cpu/dtype_dispatch.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/rg_lru.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/cache_control.h"
#include "csrc/cpu/simd-inl.h"
#include "csrc/cpu/fast_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

// The scan runs each time step in two passes over the chunk's lanes, through per-lane scratch
// that stays in L1: the gates (two exponentials, two divisions), then the recurrence (an
// exponential, a square root, the update). In one pass the whole chain for a vector,
// exp -> div -> exp -> sqrt, about 150 cycles of latency, stood behind every vector, and the
// out-of-order window held too few vectors to hide it (about 120 cycles per 8-lane vector on
// Zen 3); split, each pass is a short chain and the two together take about 30 cycles.

// 1 + e^-g with g clamped to [-87, 87] (OnePlusExpNeg's range), where the sigmoid 1 / (1 + e^-g)
// is within 2e-38 of 0 or 1.
template <class DF, class V>
HWY_INLINE V SigmoidDenominator(DF df, V g) {
  return OnePlusExpNeg(df, hn::Min(hn::Max(g, hn::Set(df, -87.0f)), hn::Set(df, 87.0f)));
}

// ix = sigmoid(gx) x: the whole gate pass at a reset, where a = 0.
template <class DF, class V>
HWY_INLINE V GatedInput(DF df, V x, V gx) {
  return hn::Div(x, SigmoidDenominator(df, gx));
}

// Gate pass for one vector: la2 = log2 a = k2 sigmoid(ga), with k2 = -c softplus(a_param)
// log2(e) per lane, and ix. Two divisions are cheaper here than one shared division and the
// multiplications to split it (and each rounds once).
template <class DF, class V>
HWY_INLINE void Gates(DF df, V x, V gx, V ga, V k2, V& la2, V& ix) {
  ix = GatedInput(df, x, gx);
  la2 = hn::Div(k2, SigmoidDenominator(df, ga));
}

// Recurrence pass for one vector: h_t = a h + sqrt(1 - a^2) ix, with a = 2^la2 and e = a - 1 each
// to its own relative precision (la2 <= 0, so e lies in [-1, 0]). 1 - a^2 = -e (2 + e) keeps its
// precision when a is close to 1 (long memories), where 1 - a*a would cancel. a rounded to
// float32 is off by up to half an ulp of 1 there, a large relative error in 1 - a, so the update
// adds back what that rounding dropped, (e - (a - 1)) h, where a - 1 is exact: for a >= 1/2
// (below, a itself is precise and the difference of two rounded values near -1 would be noise).
// la2 is clamped to -126 (a < 1e-38 is 0 here).
template <class DF, class V>
HWY_INLINE V Update(DF df, V la2, V ix, V h) {
  V a, e;
  Exp2AndExp2m1(df, hn::Max(la2, hn::Set(df, -126.0f)), a, e);
  const V a_rounding = hn::IfThenElseZero(hn::Ge(a, hn::Set(df, 0.5f)),
                                          hn::Sub(e, hn::Sub(a, hn::Set(df, 1.0f))));
  const V one_minus_a2 = hn::Mul(e, hn::Sub(hn::Set(df, -2.0f), e));
  return hn::MulAdd(a, h, hn::MulAdd(a_rounding, h, hn::Mul(ix, hn::Sqrt(one_minus_a2))));
}

// Prefetches the lanes [i, i + N) of the next time step's row (W elements on): beyond the L3,
// the hardware prefetchers, which stop at each 4 KiB page, lose track as the scan strides through
// time in rows of a few KiB (without this, 20-30% more time on one core, [1, 1024, 2560]).
template <class T>
HWY_INLINE void PrefetchNextRow(const T* row, int64_t W, size_t i, size_t N) {
  for (size_t b = 0; b < N * sizeof(T); b += 64) {
    hwy::Prefetch(reinterpret_cast<const char*>(row + W + i) + b);
  }
}

// y's vector at p, aligned there when streaming: non-temporal stores for float32 (others never
// stream).
template <class DF, class V>
HWY_INLINE void StoreOutput(DF df, V v, float* p, bool stream) {
  if (stream) {
    hn::Stream(v, df, p);
  } else {
    hn::StoreU(v, df, p);
  }
}
template <class DF, class V, class T>
HWY_INLINE void StoreOutput(DF df, V v, T* p, bool) { StoreF32(df, v, p); }

// The scan for one batch row and n lanes of the width: x, gx, ga, y point at [t = 0, w0], rows W
// apart. h holds the state before t = 0 and receives the state after the last step; k2 as in
// Gates; la2 and ix are scratch. All four are vector-aligned with room for n rounded up to whole
// vectors (kPad in the caller), h and k2 zero beyond n. stream: write float32 y with
// non-temporal stores where aligned (see kStreamBytes).
template <class T>
void ScanRows(const T* x, const T* gx, const T* ga, T* y, int64_t steps, int64_t W,
              const uint8_t* reset, const float* k2, float* h, float* la2, float* ix, size_t n,
              bool stream) {
  const hn::ScalableTag<float> df;
  using V = hn::Vec<decltype(df)>;
  const size_t N = hn::Lanes(df);
  const size_t whole = n / N * N, tail = n - whole;
  for (int64_t t = 0; t < steps; ++t) {
    const T *xr = x + size_t(t * W), *gxr = gx + size_t(t * W), *gar = ga + size_t(t * W);
    T* yr = y + size_t(t * W);
    const bool prefetch = t + 1 < steps;
    const bool nt = stream && reinterpret_cast<uintptr_t>(yr) % (N * sizeof(float)) == 0;
    if (reset && reset[t]) {
      for (size_t i = 0; i < whole; i += N) {
        if (prefetch) PrefetchNextRow(xr, W, i, N), PrefetchNextRow(gxr, W, i, N);
        const V hv = GatedInput(df, LoadF32(df, xr + i), LoadF32(df, gxr + i));
        hn::Store(hv, df, h + i);
        StoreOutput(df, hv, yr + i, nt);
      }
      if (tail) {
        const V hv = GatedInput(df, LoadF32Partial(df, xr + whole, tail),
                                LoadF32Partial(df, gxr + whole, tail));
        hn::Store(hv, df, h + whole);
        StoreF32Partial(df, hv, yr + whole, tail);
      }
      continue;
    }
    V lav, ixv;
    for (size_t i = 0; i < whole; i += N) {
      if (prefetch) {
        PrefetchNextRow(xr, W, i, N), PrefetchNextRow(gxr, W, i, N), PrefetchNextRow(gar, W, i, N);
      }
      Gates(df, LoadF32(df, xr + i), LoadF32(df, gxr + i), LoadF32(df, gar + i),
            hn::Load(df, k2 + i), lav, ixv);
      hn::Store(lav, df, la2 + i);
      hn::Store(ixv, df, ix + i);
    }
    if (tail) {
      Gates(df, LoadF32Partial(df, xr + whole, tail), LoadF32Partial(df, gxr + whole, tail),
            LoadF32Partial(df, gar + whole, tail), hn::Load(df, k2 + whole), lav, ixv);
      hn::Store(lav, df, la2 + whole);
      hn::Store(ixv, df, ix + whole);
    }
    for (size_t i = 0; i < whole; i += N) {
      const V hv = Update(df, hn::Load(df, la2 + i), hn::Load(df, ix + i), hn::Load(df, h + i));
      hn::Store(hv, df, h + i);
      StoreOutput(df, hv, yr + i, nt);
    }
    if (tail) {
      const V hv = Update(df, hn::Load(df, la2 + whole), hn::Load(df, ix + whole),
                          hn::Load(df, h + whole));
      hn::Store(hv, df, h + whole);
      StoreF32Partial(df, hv, yr + whole, tail);
    }
  }
  if (stream) hwy::FlushStream();  // order the streaming stores before the caller's join
}

void RgLruScan(DType dt, const void* x, const void* gx, const void* ga, void* y, int64_t steps,
               int64_t W, const uint8_t* reset, const float* k2, float* h, float* la2,
               float* ix, size_t n, bool stream) {
  visit_float(dt, [&](auto tag) {
    using T = decltype(tag);
    ScanRows(static_cast<const T*>(x), static_cast<const T*>(gx), static_cast<const T*>(ga),
             static_cast<T*>(y), steps, W, reset, k2, h, la2, ix, n, stream);
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
// A float32 y of this size or more is written with non-temporal stores: with the inputs (three
// times as large) it is far beyond the last-level cache, so it goes to memory anyway, and
// streaming saves reading each of its cache lines before writing it (a fifth of the traffic).
constexpr int64_t kStreamBytes = int64_t(16) << 20;
// Per-lane arrays have room for whole vectors past a chunk's end (64 lanes: any vector length).
constexpr int64_t kPad = 64;
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

// k2 = -c softplus(p) log2(e), the factor of sigmoid(gate_a) in log2 a: in double, so that large
// and small p both stay exact to float.
float k2_of(float c, float p) {
  const double d = p, softplus = d > 30 ? d : std::log1p(std::exp(d));
  return float(-double(c) * softplus * 1.4426950408889634);
}

}  // namespace

void rg_lru(const RgLruArgs& a) {
  if (a.B == 0 || a.W == 0) return;  // nothing to scan (and no width to split)
  const bool stream = a.dtype == DType::kF32 && a.B * a.T * a.W * 4 >= kStreamBytes;
  const int64_t chunk = width_chunk(a.W), n_chunks = (a.W + chunk - 1) / chunk;
  const int64_t es = dtype_size(a.dtype);
  parallel_for(a.B * n_chunks, [&](int64_t task, int) {
    const int64_t b = task / n_chunks, w0 = (task % n_chunks) * chunk;
    const int64_t n = a.W - w0 < chunk ? a.W - w0 : chunk;
    alignas(256) float k2[kMaxChunk + kPad], h[kMaxChunk + kPad];
    alignas(256) float la2[kMaxChunk + kPad], ix[kMaxChunk + kPad];  // scratch
    for (int64_t i = 0; i < n + kPad; ++i) {
      k2[i] = i < n ? k2_of(a.c, scalar_f32(a.a_dtype, a.a_param, w0 + i)) : 0.0f;
      h[i] = a.h0 && i < n ? scalar_f32(a.h0_dtype, a.h0, b * a.W + w0 + i) : 0.0f;
    }
    const int64_t off = (b * a.T * a.W + w0) * es;
    HWY_DYNAMIC_DISPATCH(RgLruScan)(
        a.dtype, static_cast<const char*>(a.x) + off, static_cast<const char*>(a.gate_x) + off,
        static_cast<const char*>(a.gate_a) + off, static_cast<char*>(a.y) + off, a.T, a.W,
        a.reset ? a.reset + b * a.T : nullptr, k2, h, la2, ix, size_t(n), stream);
    if (a.h_last) std::memcpy(a.h_last + b * a.W + w0, h, size_t(n) * sizeof(float));
  });
}

}  // namespace gemmacpp::cpu
#endif
