// Causal depthwise convolution along time (Griffin's temporal Conv1D): each channel of the width
// has its own K taps. Outputs do not depend on each other, so the work splits into fixed blocks
// of (batch, time, width); each output sums its taps in one fixed order, whatever the split.
#pragma once

#include <cstdint>

#include "csrc/core/dtype.h"

namespace gemmacpp::cpu {

struct Conv1dTemporalArgs {
  DType dtype = DType::kF32;       // of x, state, y and new_state
  const void* x = nullptr;         // [B, T, W] contiguous
  const void* state = nullptr;     // [B, K-1, W]: the K-1 inputs before x[:, 0]; null: zeros
  const float* weight = nullptr;   // [K, W] float32
  const float* bias = nullptr;     // [W] float32; null: none
  const uint8_t* reset = nullptr;  // [B, T] nonzero at segment starts; null: none
  void* y = nullptr;               // [B, T, W]
  void* new_state = nullptr;       // [B, K-1, W]: the last K-1 rows of concat(state, x); may
                                   // alias state; null: not wanted
  int64_t B = 0, T = 0, W = 0, K = 0;
};

// y[b, t] = bias + sum_k weight[k] * u[b, t + k], u = concat(state, x) along time (k ascending,
// float32). A reset at time r hides every input before r from the outputs at r and after, as if
// the segment started with a zero state.
void conv1d_temporal(const Conv1dTemporalArgs& a);

}  // namespace gemmacpp::cpu
