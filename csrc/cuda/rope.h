#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cuda {
// Rotary position embedding on `device` (default stream), with the contract of cpu::rope:
// contiguous x and y [B, T, H, D] of dtype dt (they may alias), contiguous int32/int64 positions
// ([B, T] when per_batch, else [T]); the pair (x_i, x_{i + R/2}), i < R/2, turns by
// pos / scale * base^(-2i / R) for i < rotated_pairs and not at all from there on; dimensions
// from R = rotary_dim on are copied.
void rope(DType dt, const void* x, void* y, int64_t B, int64_t T, int64_t H, int64_t D,
          DType pos_dt, const void* positions, bool per_batch, double base, double scale,
          int64_t rotary_dim, int64_t rotated_pairs, int device);
}  // namespace gemmacpp::cuda
