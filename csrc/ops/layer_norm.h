#pragma once
#include "csrc/core/tensor.h"

namespace gemmacpp::ops {
// (x - mean) / sqrt(var + eps) * weight + bias over the last axis of x (any rank >= 1), biased
// variance as torch's LayerNorm; weight [D] and bias [D] (or null) of one float dtype, which may
// differ from x's; statistics in float32; eps >= 0.
Tensor layer_norm(const TensorView& x, const TensorView& weight, const TensorView* bias, float eps,
                  const TensorView* out = nullptr);
}  // namespace gemmacpp::ops
