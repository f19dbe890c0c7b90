#pragma once
#include <cstdint>
#include <optional>

#include "csrc/core/tensor.h"

namespace gemmacpp::ops {
// Rotary position embedding, rotate-half layout, on x [B, T, H, D]. positions: int32 or int64,
// [T] (shared by the batch) or [B, T]. For i < R / 2 (R = rotary_dim, default D; even,
// 2 <= R <= D) the pair (x_i, x_{i + R/2}) turns by positions / scale * base^(-2i / R) when
// i < rotated_pairs (default R / 2: all), and not at all from there on; dimensions from R on
// pass through. base > 0, scale > 0.
Tensor rope(const TensorView& x, const TensorView& positions, double base, double scale,
            std::optional<int64_t> rotary_dim, std::optional<int64_t> rotated_pairs = std::nullopt,
            const TensorView* out = nullptr);
}  // namespace gemmacpp::ops
