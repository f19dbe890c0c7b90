#pragma once
#include "csrc/core/tensor.h"

namespace gemmacpp::ops {
// x / sqrt(mean(x^2, -1) + eps) * (unit_offset ? 1 + weight : weight) over the last axis of x
// (any rank >= 1); weight [D] of any float dtype; statistics in float32; eps >= 0.
Tensor rms_norm(const TensorView& x, const TensorView& weight, float eps, bool unit_offset,
                const TensorView* out = nullptr);
}  // namespace gemmacpp::ops
