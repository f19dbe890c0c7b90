#include "csrc/cpu/pooling.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "csrc/core/threads.h"

namespace gemmacpp::cpu {

void mean_rows(const float* x, int64_t d, const int64_t* offset, const int64_t* skip, int64_t B, float* out) {
  parallel_for(B, [&](int64_t b, int) {
    const int64_t begin = offset[b] + (skip ? skip[b] : 0), end = offset[b + 1];
    float* o = out + b * d;
    if (begin >= end) {
      std::fill(o, o + d, 0.0f);
      return;
    }
    std::vector<double> sum(static_cast<size_t>(d), 0.0);
    for (int64_t r = begin; r < end; ++r) {
      const float* row = x + r * d;
      for (int64_t j = 0; j < d; ++j) sum[size_t(j)] += row[j];
    }
    const double n = double(end - begin);
    for (int64_t j = 0; j < d; ++j) o[j] = float(sum[size_t(j)] / n);
  });
}

void l2_normalize_rows(const float* x, float* y, int64_t rows, int64_t d, float eps) {
  parallel_for(rows, [&](int64_t r, int) {
    const float* xr = x + r * d;
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += double(xr[j]) * xr[j];
    const double inv = 1.0 / std::max(std::sqrt(ss), double(eps));
    for (int64_t j = 0; j < d; ++j) y[r * d + j] = float(xr[j] * inv);
  });
}

}  // namespace gemmacpp::cpu
