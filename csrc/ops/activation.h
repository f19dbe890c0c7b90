#pragma once
#include "csrc/core/tensor.h"

namespace gemmacpp::ops {
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), elementwise.
Tensor gelu_tanh(const TensorView& x, const TensorView* out = nullptr);
// gelu_tanh(gate) * up, elementwise; gate and up have the same shape and dtype.
Tensor geglu(const TensorView& gate, const TensorView& up, const TensorView* out = nullptr);
}  // namespace gemmacpp::ops
