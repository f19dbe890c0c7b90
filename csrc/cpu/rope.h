#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cpu {
// Rotary position embedding, rotate-half layout, on contiguous x and y [B, T, H, D] of dtype dt
// (they may alias). positions: contiguous int32 or int64 (pos_dt), [B, T] when per_batch, else
// [T]. For i < rotary_dim / 2 the pair (x_i, x_{i + rotary_dim/2}) turns by
// pos / scale * base^(-2i / rotary_dim) when i < rotated_pairs, and stays as it is from there on
// (Gemma 4's "proportional" RoPE: the frequencies keep the full dimension's spacing, the slow
// ones are dropped); dimensions from rotary_dim on are copied. rotary_dim is even,
// 2 <= rotary_dim <= D; 0 <= rotated_pairs <= rotary_dim / 2.
void rope(DType dt, const void* x, void* y, int64_t B, int64_t T, int64_t H, int64_t D,
          DType pos_dt, const void* positions, bool per_batch, double base, double scale,
          int64_t rotary_dim, int64_t rotated_pairs);
}  // namespace gemmacpp::cpu
