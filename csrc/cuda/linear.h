#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cuda {
// y[M, N] = x[M, K] @ w[N, K]^T (+ bias) on `device` (default stream), through cuBLASLt with
// float32 accumulation. x: float32 rows ldx apart; w: float32, float16 or bfloat16 rows ldw apart;
// bias: N elements of dtype bdt, bias_stride apart, or null; y: float32 rows ldo apart.
// With a 16-bit weight, x is rounded to the weight's dtype first (cuBLASLt multiplies two
// matrices of one type): results then differ from the CPU op's by that rounding.
void linear(const float* x, int64_t ldx, int64_t M, int64_t K, DType wdt, const void* w,
            int64_t ldw, int64_t N, DType bdt, const void* bias, int64_t bias_stride, float* y,
            int64_t ldo, int device);
}  // namespace gemmacpp::cuda
