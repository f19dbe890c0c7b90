#include "csrc/cpu/activation.h"

#include "csrc/core/threads.h"
#include "csrc/cpu/dtype_dispatch.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/activation.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "csrc/cpu/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

// gelu_tanh(x) written as x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): the same function
// as 0.5 x (1 + tanh(u)), but without the cancellation in 1 + tanh(u) for negative x.
template <class DF>
HWY_INLINE hn::Vec<DF> GeluTanhF32(DF df, hn::Vec<DF> x) {
  const auto k = hn::Set(df, -2.0f * 0.7978845608028654f);  // -2 sqrt(2/pi)
  const auto c = hn::Set(df, 0.044715f);
  const auto x2 = hn::Mul(x, x);
  // t = -2u = k x (1 + c x^2). Past |t| = 88 the sigmoid is 0 or 1 to float32 precision (for
  // t > 88 the true result is below 1e-37 in magnitude); the clamp keeps Highway's Exp, which
  // has no overflow guard, in range, and the select makes huge negative x give 0, not x / e^88.
  const auto t = hn::Mul(hn::Mul(k, x), hn::MulAdd(c, x2, hn::Set(df, 1.0f)));
  const auto limit = hn::Set(df, 88.0f);
  const auto e = hn::Exp(df, hn::Min(hn::Max(t, hn::Neg(limit)), limit));
  return hn::IfThenZeroElse(hn::Gt(t, limit), hn::Div(x, hn::Add(hn::Set(df, 1.0f), e)));
}

void GeluTanh(DType dt, const void* x, void* y, int64_t n) {
  visit_float(dt, [&](auto tag) {
    using T = decltype(tag);
    MapF32(static_cast<const T*>(x), static_cast<T*>(y), size_t(n),
           [](auto df, auto v) { return GeluTanhF32(df, v); });
  });
}

void Geglu(DType dt, const void* gate, const void* up, void* y, int64_t n) {
  visit_float(dt, [&](auto tag) {
    using T = decltype(tag);
    MapF32x2(static_cast<const T*>(gate), static_cast<const T*>(up), static_cast<T*>(y),
             size_t(n), [](auto df, auto g, auto u) { return hn::Mul(GeluTanhF32(df, g), u); });
  });
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(GeluTanh);
HWY_EXPORT(Geglu);

void gelu_tanh(DType dt, const void* x, void* y, int64_t n) {
  const int es = dtype_size(dt);
  parallel_chunks(n, kElementwiseChunk, [&](int64_t begin, int64_t len) {
    HWY_DYNAMIC_DISPATCH(GeluTanh)(dt, static_cast<const char*>(x) + begin * es,
                                   static_cast<char*>(y) + begin * es, len);
  });
}

void geglu(DType dt, const void* gate, const void* up, void* y, int64_t n) {
  const int es = dtype_size(dt);
  parallel_chunks(n, kElementwiseChunk, [&](int64_t begin, int64_t len) {
    HWY_DYNAMIC_DISPATCH(Geglu)(dt, static_cast<const char*>(gate) + begin * es,
                                static_cast<const char*>(up) + begin * es,
                                static_cast<char*>(y) + begin * es, len);
  });
}
}  // namespace gemmacpp::cpu
#endif
