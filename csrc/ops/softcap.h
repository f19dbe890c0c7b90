#pragma once
#include "csrc/core/tensor.h"

namespace gemmacpp::ops {
// cap * tanh(x / cap), elementwise; cap > 0.
Tensor softcap(const TensorView& x, float cap, const TensorView* out = nullptr);
}  // namespace gemmacpp::ops
