// The arguments of one RG-LRU call (csrc/cpu/rg_lru.h documents the recurrence), a plain struct
// outside the kernel folders so that the ops layer and the model blocks fill it for any device.
#pragma once

#include <cstdint>

#include "csrc/core/dtype.h"

namespace gemmacpp {

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

}  // namespace gemmacpp
