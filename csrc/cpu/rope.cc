#include "csrc/cpu/rope.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "csrc/core/threads.h"
#include "csrc/cpu/dtype_dispatch.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/rope.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "csrc/cpu/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

// cos_out[i], sin_out[i] of angle[i] (already reduced to [-pi, pi]), n elements.
void SinCosTable(const float* angle, float* cos_out, float* sin_out, int64_t n_signed) {
  const size_t n = size_t(n_signed);
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto a = hn::LoadU(df, angle + i);
    hn::StoreU(hn::Cos(df, a), df, cos_out + i);
    hn::StoreU(hn::Sin(df, a), df, sin_out + i);
  }
  if (i < n) {
    const auto a = LoadF32Partial(df, angle + i, n - i);
    StoreF32Partial(df, hn::Cos(df, a), cos_out + i, n - i);
    StoreF32Partial(df, hn::Sin(df, a), sin_out + i, n - i);
  }
}

// One (b, t) row: H heads of D elements, all turned by the same cos/sin table of `half` entries.
void RotateRow(DType dt, const void* x, void* y, int64_t H, int64_t D, int64_t half_signed,
               const float* cos_t, const float* sin_t) {
  visit_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const size_t half = size_t(half_signed);
    const hn::ScalableTag<float> df;
    const size_t N = hn::Lanes(df);
    for (int64_t h = 0; h < H; ++h) {
      const T* x1 = static_cast<const T*>(x) + h * D;
      const T* x2 = x1 + half;
      T* y1 = static_cast<T*>(y) + h * D;
      T* y2 = y1 + half;
      size_t i = 0;
      for (; i + N <= half; i += N) {
        const auto a = LoadF32(df, x1 + i), b = LoadF32(df, x2 + i);
        const auto c = hn::LoadU(df, cos_t + i), s = hn::LoadU(df, sin_t + i);
        StoreF32(df, hn::MulSub(a, c, hn::Mul(b, s)), y1 + i);  // a cos - b sin
        StoreF32(df, hn::MulAdd(a, s, hn::Mul(b, c)), y2 + i);  // b cos + a sin
      }
      if (i < half) {
        const size_t n = half - i;
        const auto a = LoadF32Partial(df, x1 + i, n), b = LoadF32Partial(df, x2 + i, n);
        const auto c = LoadF32Partial(df, cos_t + i, n), s = LoadF32Partial(df, sin_t + i, n);
        StoreF32Partial(df, hn::MulSub(a, c, hn::Mul(b, s)), y1 + i, n);
        StoreF32Partial(df, hn::MulAdd(a, s, hn::Mul(b, c)), y2 + i, n);
      }
      // Dimensions past the rotary part pass through (nothing to do when rotating in place).
      if (x != y && D > 2 * half_signed) {
        std::memcpy(y1 + 2 * half, x1 + 2 * half, size_t(D - 2 * half_signed) * sizeof(T));
      }
    }
  });
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(SinCosTable);
HWY_EXPORT(RotateRow);

void rope(DType dt, const void* x, void* y, int64_t B, int64_t T, int64_t H, int64_t D,
          DType pos_dt, const void* positions, bool per_batch, double base, double scale,
          int64_t rotary_dim, int64_t rotated_pairs) {
  const int64_t rows = B * T, half = rotary_dim / 2;
  if (rows == 0 || H == 0) return;
  // Frequencies / scale in double: at position 30000 a float32 angle is off by ~1e-3 rad.
  std::vector<double> freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < rotated_pairs; ++i) {
    freq[size_t(i)] = std::pow(base, -2.0 * double(i) / double(rotary_dim)) / scale;
  }  // the rest stay 0: cos 1 and sin 0 keep both halves' bits
  const int es = dtype_size(dt);
  const int64_t row_elems = H * D;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  // One task per (b, t) row: its cos/sin table is built once and shared by all H heads.
  parallel_for(rows, [&](int64_t r, int) {
    thread_local std::vector<float> table;
    table.resize(size_t(3 * half));
    float* angle = table.data();
    float* cos_t = angle + half;
    float* sin_t = cos_t + half;
    const int64_t p = per_batch ? r : r % T;
    const double pos = pos_dt == DType::kI32 ? double(static_cast<const int32_t*>(positions)[p])
                                             : double(static_cast<const int64_t*>(positions)[p]);
    // Reduce to [-pi, pi] in double; the float32 rounding of the reduced angle then costs at most
    // ~2e-7 absolute in cos and sin, and the vectorised float32 Sin/Cos stay in their valid range.
    for (int64_t i = 0; i < half; ++i) {
      const double a = pos * freq[size_t(i)];
      angle[i] = float(a - kTwoPi * std::nearbyint(a / kTwoPi));
    }
    HWY_DYNAMIC_DISPATCH(SinCosTable)(angle, cos_t, sin_t, half);
    HWY_DYNAMIC_DISPATCH(RotateRow)(dt, static_cast<const char*>(x) + r * row_elems * es,
                                    static_cast<char*>(y) + r * row_elems * es, H, D, half, cos_t,
                                    sin_t);
  });
}
}  // namespace gemmacpp::cpu
#endif
