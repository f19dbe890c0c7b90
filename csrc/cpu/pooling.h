// Sentence pooling over packed sequences (a text encoder's head): the mean of each sequence's rows,
// and rows scaled to unit L2 norm. Sums run in double in row order, one row or sequence per task,
// so results do not depend on the thread count.
#pragma once

#include <cstdint>

namespace gemmacpp::cpu {

// out[b, :] = mean of rows [offset[b] + skip[b], offset[b + 1]) of x [M, d] (skip null: 0), or
// zeros when that leaves no row. offset has B + 1 entries.
void mean_rows(const float* x, int64_t d, const int64_t* offset, const int64_t* skip, int64_t B, float* out);

// y = x / max(||x||_2, eps) per row of d values (as torch.nn.functional.normalize); y may alias x.
void l2_normalize_rows(const float* x, float* y, int64_t rows, int64_t d, float eps);

}  // namespace gemmacpp::cpu
