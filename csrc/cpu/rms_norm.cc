#include "csrc/cpu/rms_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "csrc/core/threads.h"
#include "csrc/cpu/dtype_dispatch.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/rms_norm.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "csrc/cpu/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

// The effective per-column scale in float32: w, or 1 + w with unit_offset. Done once per call so
// that the row kernel needs only one dtype (that of x) and one multiply per element.
void WeightToF32(DType wdt, const void* w, float* out, int64_t d_signed, bool unit_offset) {
  visit_float(wdt, [&](auto tag) {
    using W = decltype(tag);
    const W* src = static_cast<const W*>(w);
    const size_t d = size_t(d_signed);
    const hn::ScalableTag<float> df;
    const size_t N = hn::Lanes(df);
    const auto offset = hn::Set(df, unit_offset ? 1.0f : 0.0f);
    size_t i = 0;
    for (; i + N <= d; i += N) hn::StoreU(hn::Add(LoadF32(df, src + i), offset), df, out + i);
    if (i < d) StoreF32Partial(df, hn::Add(LoadF32Partial(df, src + i, d - i), offset), out + i, d - i);
  });
}

// Sum of x^2 over one row: four independent accumulators (latency hiding), combined in a fixed
// order, so the result depends only on the data and the SIMD target.
template <class T>
HWY_INLINE float SumOfSquares(const T* x, size_t d) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  size_t i = 0;
  for (; i + 4 * N <= d; i += 4 * N) {
    const auto v0 = LoadF32(df, x + i), v1 = LoadF32(df, x + i + N);
    const auto v2 = LoadF32(df, x + i + 2 * N), v3 = LoadF32(df, x + i + 3 * N);
    a0 = hn::MulAdd(v0, v0, a0);
    a1 = hn::MulAdd(v1, v1, a1);
    a2 = hn::MulAdd(v2, v2, a2);
    a3 = hn::MulAdd(v3, v3, a3);
  }
  for (; i + N <= d; i += N) {
    const auto v = LoadF32(df, x + i);
    a0 = hn::MulAdd(v, v, a0);
  }
  if (i < d) {
    const auto v = LoadF32Partial(df, x + i, d - i);
    a1 = hn::MulAdd(v, v, a1);
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
}

void RmsNormRows(DType dt, const void* x, void* y, int64_t rows, int64_t d_signed,
                 const float* w, float eps) {
  visit_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const size_t d = size_t(d_signed);
    const hn::ScalableTag<float> df;
    const size_t N = hn::Lanes(df);
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = static_cast<const T*>(x) + r * d;
      T* yr = static_cast<T*>(y) + r * d;
      const float ss = SumOfSquares(xr, d);
      // One scalar per row: do it in double so that the only float32 rounding is the sum's.
      const auto inv = hn::Set(df, float(1.0 / std::sqrt(double(ss) / double(d) + double(eps))));
      size_t i = 0;
      for (; i + N <= d; i += N) {
        StoreF32(df, hn::Mul(hn::Mul(LoadF32(df, xr + i), inv), hn::LoadU(df, w + i)), yr + i);
      }
      if (i < d) {
        const size_t n = d - i;
        const auto v = hn::Mul(hn::Mul(LoadF32Partial(df, xr + i, n), inv),
                               LoadF32Partial(df, w + i, n));
        StoreF32Partial(df, v, yr + i, n);
      }
    }
  });
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(WeightToF32);
HWY_EXPORT(RmsNormRows);

void rms_norm(DType dt, const void* x, void* y, int64_t rows, int64_t d, DType wdt,
              const void* weight, float eps, bool unit_offset) {
  if (rows <= 0 || d <= 0) return;
  std::vector<float> w(static_cast<size_t>(d));
  HWY_DYNAMIC_DISPATCH(WeightToF32)(wdt, weight, w.data(), d, unit_offset);
  // Whole rows per task, about kElementwiseChunk elements each: depends on the shape only.
  const int64_t rows_per_task = std::max<int64_t>(1, kElementwiseChunk / d);
  const int64_t tasks = (rows + rows_per_task - 1) / rows_per_task;
  const int es = dtype_size(dt);
  parallel_for(tasks, [&](int64_t t, int) {
    const int64_t begin = t * rows_per_task, n = std::min(rows_per_task, rows - begin);
    HWY_DYNAMIC_DISPATCH(RmsNormRows)(dt, static_cast<const char*>(x) + begin * d * es,
                                      static_cast<char*>(y) + begin * d * es, n, d, w.data(),
                                      eps);
  });
}
}  // namespace gemmacpp::cpu
#endif
