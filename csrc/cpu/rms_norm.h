#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cpu {
// For each of `rows` contiguous rows of d elements of dtype dt:
//   y = x / sqrt(mean(x^2) + eps) * (unit_offset ? 1 + w : w),
// with the sum of squares accumulated in float32 in a fixed order. weight holds d elements of
// dtype wdt (any float activation dtype, independent of dt). x and y may alias.
void rms_norm(DType dt, const void* x, void* y, int64_t rows, int64_t d, DType wdt,
              const void* weight, float eps, bool unit_offset);
}  // namespace gemmacpp::cpu
