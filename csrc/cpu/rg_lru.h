// Griffin's real-gated linear recurrent unit (RG-LRU), fused: the gates' sigmoids, the recurrence
// weight a, the sqrt(1 - a^2) input normalisation and the scan over time in one pass over the
// data. Sequential in time, vectorised across the width, parallel across the batch and fixed
// chunks of the width (every lane is computed alone, so results do not depend on the split or on
// the thread count).
#pragma once

#include <cstdint>

#include "csrc/core/dtype.h"

namespace gemmacpp::cpu {

struct RgLruArgs {
  DType dtype = DType::kF32;        // of x, gate_x, gate_a and y
  const void* x = nullptr;          // [B, T, W] contiguous
  const void* gate_x = nullptr;     // [B, T, W] input-gate logits (before the sigmoid)
  const void* gate_a = nullptr;     // [B, T, W] recurrence-gate logits (before the sigmoid)
  DType a_dtype = DType::kF32;      // of a_param
  const void* a_param = nullptr;    // [W]: log a = -c * sigmoid(gate_a) * softplus(a_param)
  DType h0_dtype = DType::kF32;     // of h0
  const void* h0 = nullptr;         // [B, W] state before x[:, 0]; null: zeros
  const uint8_t* reset = nullptr;   // [B, T] nonzero at segment starts; null: none
  void* y = nullptr;                // [B, T, W], dtype: every h_t
  float* h_last = nullptr;          // [B, W] float32 state after the last step (may alias a
                                    // float32 h0); null: not wanted
  int64_t B = 0, T = 0, W = 0;
  float c = 8.0f;
};

// Per step: i = sigmoid(gate_x), r = sigmoid(gate_a), log a = -c r softplus(a_param),
// h_t = a h_{t-1} + sqrt(1 - a^2) (i x_t); at a reset a = 0 and the sqrt factor is 1. The state
// stays float32 between steps; y is rounded to dtype.
void rg_lru(const RgLruArgs& a);

}  // namespace gemmacpp::cpu
