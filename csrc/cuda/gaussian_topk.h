#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cuda {
// cpu::gaussian_topk (csrc/cpu/gaussian_topk.h) on `device` (default stream): rows of F
// contiguous elements of dtype dt, row statistics in float64; x and y may alias.
void gaussian_topk(DType dt, const void* x, void* y, int64_t rows, int64_t F, float z, int device);
}  // namespace gemmacpp::cuda
