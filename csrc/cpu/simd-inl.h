// Per-target SIMD helpers shared by the CPU kernels: float32 loads and stores from and to the
// activation types (float32, float16, bfloat16), whole vectors and partial tails.
// Include after hwy/highway.h inside a foreach_target translation unit.

#if defined(GEMMACPP_CPU_SIMD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef GEMMACPP_CPU_SIMD_INL_H_
#undef GEMMACPP_CPU_SIMD_INL_H_
#else
#define GEMMACPP_CPU_SIMD_INL_H_
#endif

#include <cstring>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class DF> HWY_INLINE hn::Vec<DF> LoadF32(DF df, const float* p) { return hn::LoadU(df, p); }
template <class DF> HWY_INLINE hn::Vec<DF> LoadF32(DF df, const hwy::float16_t* p) {
  return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::float16_t, DF>(), p));
}
template <class DF> HWY_INLINE hn::Vec<DF> LoadF32(DF df, const hwy::bfloat16_t* p) {
  return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::bfloat16_t, DF>(), p));
}

template <class DF> HWY_INLINE void StoreF32(DF df, hn::Vec<DF> v, float* p) { hn::StoreU(v, df, p); }
template <class DF> HWY_INLINE void StoreF32(DF df, hn::Vec<DF> v, hwy::float16_t* p) {
  const hn::Rebind<hwy::float16_t, DF> dh;
  hn::StoreU(hn::DemoteTo(dh, v), dh, p);
}
// Round to nearest even (Highway's DemoteTo truncates on some versions); NaN stays NaN.
template <class DF> HWY_INLINE void StoreF32(DF df, hn::Vec<DF> v, hwy::bfloat16_t* p) {
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<uint16_t, DF> du16;
  const hn::Rebind<hwy::bfloat16_t, DF> dbf;
  const auto bits = hn::BitCast(du, v);
  const auto lsb = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1));
  auto r = hn::ShiftRight<16>(hn::Add(hn::Add(bits, hn::Set(du, 0x7fffu)), lsb));
  r = hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), hn::Set(du, 0x7fc0u), r);
  hn::StoreU(hn::BitCast(dbf, hn::DemoteTo(du16, hn::BitCast(di, r))), dbf, p);
}

// The first n (< Lanes) elements; the rest of the vector is zero.
template <class DF, class T>
HWY_INLINE hn::Vec<DF> LoadF32Partial(DF df, const T* p, size_t n) {
  HWY_ALIGN T buf[hn::MaxLanes(df)] = {};
  std::memcpy(buf, p, n * sizeof(T));
  return LoadF32(df, buf);
}
template <class DF, class T>
HWY_INLINE void StoreF32Partial(DF df, hn::Vec<DF> v, T* p, size_t n) {
  HWY_ALIGN T buf[hn::MaxLanes(df)];
  StoreF32(df, v, buf);
  std::memcpy(p, buf, n * sizeof(T));
}

// y[i] = f(x[i]) over n elements, f taking and returning float32 vectors.
template <class T, class F>
HWY_INLINE void MapF32(const T* x, T* y, size_t n, const F& f) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) StoreF32(df, f(df, LoadF32(df, x + i)), y + i);
  if (i < n) StoreF32Partial(df, f(df, LoadF32Partial(df, x + i, n - i)), y + i, n - i);
}

// y[i] = f(a[i], b[i]) over n elements.
template <class T, class F>
HWY_INLINE void MapF32x2(const T* a, const T* b, T* y, size_t n, const F& f) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) StoreF32(df, f(df, LoadF32(df, a + i), LoadF32(df, b + i)), y + i);
  if (i < n) {
    const size_t r = n - i;
    StoreF32Partial(df, f(df, LoadF32Partial(df, a + i, r), LoadF32Partial(df, b + i, r)), y + i, r);
  }
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
