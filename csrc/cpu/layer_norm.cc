#include "csrc/cpu/layer_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "csrc/core/threads.h"
#include "csrc/cpu/dtype_dispatch.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/layer_norm.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "csrc/cpu/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

// weight (and bias, or zeros) in float32, once per call, so the row kernel reads one dtype.
void ParamsToF32(DType wdt, const void* w, const void* b, float* w_out, float* b_out,
                 int64_t d_signed) {
  visit_float(wdt, [&](auto tag) {
    using W = decltype(tag);
    const hn::ScalableTag<float> df;
    const size_t N = hn::Lanes(df), d = size_t(d_signed);
    auto convert = [&](const W* src, float* dst) {
      size_t i = 0;
      for (; i + N <= d; i += N) hn::StoreU(LoadF32(df, src + i), df, dst + i);
      if (i < d) StoreF32Partial(df, LoadF32Partial(df, src + i, d - i), dst + i, d - i);
    };
    convert(static_cast<const W*>(w), w_out);
    if (b) convert(static_cast<const W*>(b), b_out);
    else std::fill(b_out, b_out + d, 0.0f);
  });
}

// Sum over a row of x (center == nullptr) or of (x - c)^2: four accumulators (latency hiding)
// combined in a fixed order, so the result depends only on the data and the SIMD target.
template <bool kCentred, class T>
HWY_INLINE float RowSum(const T* x, size_t d, float c) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  const auto vc = hn::Set(df, c);
  auto term = [&](hn::Vec<decltype(df)> v) {
    if constexpr (kCentred) {
      const auto t = hn::Sub(v, vc);
      return hn::Mul(t, t);
    } else {
      return v;
    }
  };
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  size_t i = 0;
  for (; i + 4 * N <= d; i += 4 * N) {
    a0 = hn::Add(a0, term(LoadF32(df, x + i)));
    a1 = hn::Add(a1, term(LoadF32(df, x + i + N)));
    a2 = hn::Add(a2, term(LoadF32(df, x + i + 2 * N)));
    a3 = hn::Add(a3, term(LoadF32(df, x + i + 3 * N)));
  }
  for (; i + N <= d; i += N) a0 = hn::Add(a0, term(LoadF32(df, x + i)));
  if (i < d) {
    // Lanes past the row are zero after the load; mask them out of the centred term too.
    const size_t n = d - i;
    const auto m = hn::FirstN(df, n);
    a1 = hn::Add(a1, hn::IfThenElseZero(m, term(LoadF32Partial(df, x + i, n))));
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
}

void LayerNormRows(DType dt, const void* x, void* y, int64_t rows, int64_t d_signed,
                   const float* w, const float* b, float eps) {
  visit_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const size_t d = size_t(d_signed);
    const hn::ScalableTag<float> df;
    const size_t N = hn::Lanes(df);
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = static_cast<const T*>(x) + r * d;
      T* yr = static_cast<T*>(y) + r * d;
      // Two passes (mean, then centred squares): no cancellation when |mean| >> std.
      const float mean = float(double(RowSum<false>(xr, d, 0.0f)) / double(d));
      const float var = float(double(RowSum<true>(xr, d, mean)) / double(d));
      const float inv = float(1.0 / std::sqrt(double(var) + double(eps)));
      const auto vm = hn::Set(df, mean), vi = hn::Set(df, inv);
      size_t i = 0;
      for (; i + N <= d; i += N) {
        const auto t = hn::Mul(hn::Sub(LoadF32(df, xr + i), vm), vi);
        StoreF32(df, hn::MulAdd(t, hn::LoadU(df, w + i), hn::LoadU(df, b + i)), yr + i);
      }
      if (i < d) {
        const size_t n = d - i;
        const auto t = hn::Mul(hn::Sub(LoadF32Partial(df, xr + i, n), vm), vi);
        StoreF32Partial(df, hn::MulAdd(t, LoadF32Partial(df, w + i, n), LoadF32Partial(df, b + i, n)),
                        yr + i, n);
      }
    }
  });
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(ParamsToF32);
HWY_EXPORT(LayerNormRows);

void layer_norm(DType dt, const void* x, void* y, int64_t rows, int64_t d, DType wdt,
                const void* weight, const void* bias, float eps) {
  if (rows <= 0 || d <= 0) return;
  std::vector<float> w(static_cast<size_t>(d)), b(static_cast<size_t>(d));
  HWY_DYNAMIC_DISPATCH(ParamsToF32)(wdt, weight, bias, w.data(), b.data(), d);
  // Whole rows per task, about kElementwiseChunk elements each: depends on the shape only.
  const int64_t rows_per_task = std::max<int64_t>(1, kElementwiseChunk / d);
  const int64_t tasks = (rows + rows_per_task - 1) / rows_per_task;
  const int es = dtype_size(dt);
  parallel_for(tasks, [&](int64_t t, int) {
    const int64_t begin = t * rows_per_task, n = std::min(rows_per_task, rows - begin);
    HWY_DYNAMIC_DISPATCH(LayerNormRows)(dt, static_cast<const char*>(x) + begin * d * es,
                                        static_cast<char*>(y) + begin * d * es, n, d, w.data(),
                                        b.data(), eps);
  });
}
}  // namespace gemmacpp::cpu
#endif
