#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cpu {
// For each of `rows` contiguous rows of d elements of dtype dt:
//   y = (x - mean(x)) / sqrt(var(x) + eps) * w + b   (biased variance, as torch's LayerNorm),
// with the mean and then the centred sum of squares accumulated in float32 in a fixed order.
// weight and bias hold d elements of dtype wdt (any float activation dtype); bias may be null.
// x and y may alias.
void layer_norm(DType dt, const void* x, void* y, int64_t rows, int64_t d, DType wdt,
                const void* weight, const void* bias, float eps);
}  // namespace gemmacpp::cpu
