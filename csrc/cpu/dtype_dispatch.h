// Calls a generic lambda with a value of the C++ type that stores an activation dtype.
#pragma once

#include "csrc/core/dtype.h"
#include "csrc/core/error.h"
#include "hwy/base.h"

namespace gemmacpp::cpu {

template <class Fn>
decltype(auto) visit_float(DType t, Fn&& fn) {
  switch (t) {
    case DType::kF32: return fn(float{});
    case DType::kF16: return fn(hwy::float16_t{});
    case DType::kBF16: return fn(hwy::bfloat16_t{});
    default: break;
  }
  throw TypeError(str_cat("no CPU kernel for dtype ", dtype_name(t)));
}

// Fixed-size chunks for elementwise work: the split never depends on the thread count.
constexpr int64_t kElementwiseChunk = 1 << 14;

}  // namespace gemmacpp::cpu
