// The arguments of one temporal Conv1D call (csrc/cpu/conv1d_temporal.h documents the maths), a
// plain struct outside the kernel folders so that the ops layer and the model blocks fill it.
#pragma once

#include <cstdint>

#include "csrc/core/dtype.h"

namespace gemmacpp {

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

}  // namespace gemmacpp
