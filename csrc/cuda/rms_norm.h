#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cuda {
// For each of `rows` contiguous rows of d elements of dtype dt on `device` (default stream):
//   y = x / sqrt(mean(x^2) + eps) * (unit_offset ? 1 + w : w),
// statistics in float32; weight holds d elements of dtype wdt. x and y may alias.
void rms_norm(DType dt, const void* x, void* y, int64_t rows, int64_t d, DType wdt,
              const void* weight, float eps, bool unit_offset, int device);
}  // namespace gemmacpp::cuda
