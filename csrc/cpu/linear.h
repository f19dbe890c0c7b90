#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cpu {

// Up to this many rows of x take the matrix-vector path (weights streamed once, every row of x
// against each block of weight rows); more rows take the blocked GEMM.
constexpr int64_t kMatvecMaxRows = 4;

// out[m * ldo + n] = sum_k x[m * ldx + k] * w[n * ldw + k] (+ bias[n]) for m < M, n < N, k < K.
// x and out are float32; w is float32, float16 or bfloat16 (wdt), read in place; bias is float32
// or null. Multithreaded over fixed blocks of outputs; results do not depend on the thread count.
void linear(const float* x, int64_t ldx, int64_t M, int64_t K, DType wdt, const void* w,
            int64_t ldw, int64_t N, const float* bias, float* out, int64_t ldo);

}  // namespace gemmacpp::cpu
