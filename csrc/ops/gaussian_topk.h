#pragma once
#include "csrc/core/tensor.h"

namespace gemmacpp::ops {
// Per row of x [..., F]: max(x - (mean + z * std), 0), mean and population std of the row
// (Gemma 3n's activation sparsity; z the standard normal quantile of the kept fraction's complement).
Tensor gaussian_topk(const TensorView& x, float z, const TensorView* out = nullptr);
}  // namespace gemmacpp::ops
