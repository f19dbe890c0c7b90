#pragma once
#include "csrc/core/tensor.h"

namespace gemmacpp::ops {
// x @ weight.T (+ bias), as torch.nn.functional.linear. x: [..., K] float32; weight: [N, K]
// float32, float16 or bfloat16, read in place; bias: [N] (any float dtype) or null.
// Returns [..., N] float32.
Tensor linear(const TensorView& x, const TensorView& weight, const TensorView* bias = nullptr,
              const TensorView* out = nullptr);
}  // namespace gemmacpp::ops
