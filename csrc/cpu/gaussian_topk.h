// Gemma 3n's activation sparsity ("gaussian top-k"): each row keeps what lies above
// mean + z * std of the row (population std), shifted down by that cutoff.
#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cpu {
// y[r, j] = max(x[r, j] - (mean_r + z * std_r), 0) for `rows` rows of F contiguous elements of dtype
// dt; the row statistics accumulate in float64 (x and y may alias).
void gaussian_topk(DType dt, const void* x, void* y, int64_t rows, int64_t F, float z);
}  // namespace gemmacpp::cpu
