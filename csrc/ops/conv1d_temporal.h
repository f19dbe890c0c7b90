#pragma once
#include "csrc/core/tensor.h"

namespace gemmacpp::ops {

struct Conv1dTemporalResult {
  Tensor y;          // [B, T, W], x's dtype
  Tensor new_state;  // [B, K-1, W], x's dtype: the last K-1 rows of concat(state, x)
};

// Causal depthwise conv along time: x [B, T, W], weight [K, W] and bias [W] or null (any float
// dtype), state [B, K-1, W] in x's dtype or null for zeros, reset [B, T] bool or null.
Conv1dTemporalResult conv1d_temporal(const TensorView& x, const TensorView& weight,
                                     const TensorView* bias, const TensorView* state,
                                     const TensorView* reset);

}  // namespace gemmacpp::ops
