#include "csrc/cpu/gaussian_topk.h"

#include <algorithm>
#include <cmath>

#include "csrc/core/threads.h"
#include "csrc/cpu/dtype_dispatch.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/gaussian_topk.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "csrc/cpu/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

// Sums over one row in float64 lanes, the float32 values promoted half a vector at a time: for
// the mean, sum x; for the spread, sum (x - mean)^2 with the difference rounded to float32 first
// (as float32 arithmetic gives it). A row of equal values has mean exactly that value and std 0.
template <class T>
HWY_INLINE double RowSum(const T* x, size_t F, bool squares, float mean) {
  const hn::ScalableTag<double> dd;
  const hn::Rebind<float, decltype(dd)> df;  // as many float32 lanes as dd has float64 lanes
  const size_t L = hn::Lanes(dd);
  const auto vmean = hn::Set(df, mean);
  auto a0 = hn::Zero(dd), a1 = hn::Zero(dd);
  const auto term = [&](hn::Vec<decltype(df)> v) {
    if (!squares) return hn::PromoteTo(dd, v);
    const auto e = hn::PromoteTo(dd, hn::Sub(v, vmean));
    return hn::Mul(e, e);
  };
  size_t i = 0;
  for (; i + 2 * L <= F; i += 2 * L) {
    a0 = hn::Add(a0, term(LoadF32(df, x + i)));
    a1 = hn::Add(a1, term(LoadF32(df, x + i + L)));
  }
  for (; i + L <= F; i += L) a0 = hn::Add(a0, term(LoadF32(df, x + i)));
  if (i < F) a1 = hn::Add(a1, hn::IfThenElseZero(hn::FirstN(dd, F - i), term(LoadF32Partial(df, x + i, F - i))));
  return hn::GetLane(hn::SumOfLanes(dd, hn::Add(a0, a1)));
}

void GaussianTopkRows(DType dt, const void* x, void* y, int64_t rows, int64_t F_signed, float z) {
  visit_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const size_t F = size_t(F_signed);
    const hn::ScalableTag<float> df;
    const size_t L = hn::Lanes(df);
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = static_cast<const T*>(x) + r * F;
      T* yr = static_cast<T*>(y) + r * F;
      const float mean = float(RowSum(xr, F, false, 0.0f) / double(F));
      const float std_dev = float(std::sqrt(RowSum(xr, F, true, mean) / double(F)));
      const auto cutoff = hn::Set(df, mean + std_dev * z);
      // x > cutoff exactly when x - cutoff > 0; a NaN gives 0, as relu's comparison does.
      const auto keep = [&](hn::Vec<decltype(df)> v) {
        return hn::IfThenElseZero(hn::Gt(v, cutoff), hn::Sub(v, cutoff));
      };
      size_t i = 0;
      for (; i + L <= F; i += L) StoreF32(df, keep(LoadF32(df, xr + i)), yr + i);
      if (i < F) StoreF32Partial(df, keep(LoadF32Partial(df, xr + i, F - i)), yr + i, F - i);
    }
  });
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(GaussianTopkRows);

void gaussian_topk(DType dt, const void* x, void* y, int64_t rows, int64_t F, float z) {
  if (rows <= 0 || F <= 0) return;
  // Whole rows per task, about kElementwiseChunk elements each: depends on the shape only.
  const int64_t rows_per_task = std::max<int64_t>(1, kElementwiseChunk / F);
  const int64_t tasks = (rows + rows_per_task - 1) / rows_per_task;
  const int es = dtype_size(dt);
  parallel_for(tasks, [&](int64_t t, int) {
    const int64_t begin = t * rows_per_task, n = std::min(rows_per_task, rows - begin);
    HWY_DYNAMIC_DISPATCH(GaussianTopkRows)(dt, static_cast<const char*>(x) + begin * F * es,
                                           static_cast<char*>(y) + begin * F * es, n, F, z);
  });
}
}  // namespace gemmacpp::cpu
#endif
