#pragma once
#include "csrc/core/tensor.h"

namespace gemmacpp::ops {

struct RgLruResult {
  Tensor y;       // [B, T, W], x's dtype
  Tensor h_last;  // [B, W] float32
};

// Griffin's RG-LRU over x [B, T, W] with gate logits gate_x, gate_a (x's shape and dtype) and the
// stored recurrence parameter a_param [W] (any float dtype). h0: [B, W] (any float dtype) or null
// for zeros; reset: [B, T] bool or null, which means a reset at t = 0 when h0 is null and none
// otherwise. c > 0.
RgLruResult rg_lru(const TensorView& x, const TensorView& gate_x, const TensorView& gate_a,
                   const TensorView& a_param, const TensorView* h0, const TensorView* reset,
                   float c);

}  // namespace gemmacpp::ops
