#include "csrc/cpu/softcap.h"

#include "csrc/core/threads.h"
#include "csrc/cpu/dtype_dispatch.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/softcap.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "csrc/cpu/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

void Softcap(DType dt, const void* x, void* y, int64_t n, float cap) {
  visit_float(dt, [&](auto tag) {
    using T = decltype(tag);
    MapF32(static_cast<const T*>(x), static_cast<T*>(y), size_t(n), [cap](auto df, auto v) {
      const auto c = hn::Set(df, cap);
      return hn::Mul(c, hn::Tanh(df, hn::Div(v, c)));
    });
  });
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(Softcap);

void softcap(DType dt, const void* x, void* y, int64_t n, float cap) {
  const int es = dtype_size(dt);
  parallel_chunks(n, kElementwiseChunk, [&](int64_t begin, int64_t len) {
    HWY_DYNAMIC_DISPATCH(Softcap)(dt, static_cast<const char*>(x) + begin * es,
                                  static_cast<char*>(y) + begin * es, len, cap);
  });
}
}  // namespace gemmacpp::cpu
#endif
