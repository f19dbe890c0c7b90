#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cpu {

// out[m * ldo + n] = sum_k x[m * ldx + k] * w[n * ldw + k] (+ bias[n]) for m < M, n < N, k < K.
// x and out are float32; w is float32, float16 or bfloat16 (wdt), read in place; bias is float32
// or null. Multithreaded over fixed blocks of outputs. Row m of out is bitwise the same whatever
// M, the other rows of x and the thread count (on a given SIMD target).
void linear(const float* x, int64_t ldx, int64_t M, int64_t K, DType wdt, const void* w,
            int64_t ldw, int64_t N, const float* bias, float* out, int64_t ldo);

}  // namespace gemmacpp::cpu
