// Host-side: calls a generic lambda with a value of the CUDA type that stores an activation dtype.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "csrc/core/dtype.h"
#include "csrc/core/error.h"

namespace gemmacpp::cuda {

template <class Fn>
void visit_float(DType t, Fn&& fn) {
  switch (t) {
    case DType::kF32: fn(float{}); return;
    case DType::kF16: fn(__half{}); return;
    case DType::kBF16: fn(__nv_bfloat16{}); return;
    default: break;
  }
  throw TypeError(str_cat("no CUDA kernel for dtype ", dtype_name(t)));
}

}  // namespace gemmacpp::cuda
