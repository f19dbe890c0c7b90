#include "csrc/cpu/reference/rg_lru_scan.h"

#include <algorithm>
#include <cmath>

namespace gemmacpp::cpu::reference {

std::vector<float> rg_lru_recurrence_weights(const float* gate_a, const uint8_t* reset, int64_t rows,
                                             int64_t W, DType a_dtype, const void* a_param, float c) {
  // softplus in double once per channel: log1p(exp(p)), written to stay finite for large p.
  std::vector<float> sp(static_cast<size_t>(W));
  for (int64_t j = 0; j < W; ++j) {
    const double v = load_f32(a_dtype, a_param, j);
    sp[size_t(j)] = float(v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v)));
  }
  std::vector<float> a(static_cast<size_t>(rows * W));
  for (int64_t r = 0; r < rows; ++r) {
    float* ar = a.data() + r * W;
    if (reset && reset[r]) {
      std::fill(ar, ar + W, 0.0f);
      continue;
    }
    const float* g = gate_a + r * W;
    for (int64_t j = 0; j < W; ++j) {
      const float sig = 1.0f / (1.0f + std::exp(-g[j]));
      ar[j] = std::exp(-c * sig * sp[size_t(j)]);
    }
  }
  return a;
}

void rg_lru_scan(const float* a, const float* x, const float* gate_x, int64_t nb, int64_t n, int64_t W,
                 const float* h0, float* y, float* h_last) {
  std::vector<float> h(static_cast<size_t>(W));
  for (int64_t s = 0; s < nb; ++s) {
    if (h0) {
      std::copy(h0 + s * W, h0 + (s + 1) * W, h.begin());
    } else {
      std::fill(h.begin(), h.end(), 0.0f);
    }
    for (int64_t t = 0; t < n; ++t) {
      const int64_t r = (s * n + t) * W;
      for (int64_t j = 0; j < W; ++j) {
        const float at = a[r + j];
        // 1 - a^2 as (1 - a)(1 + a): no cancellation as a approaches 1; an edit outside [-1, 1]
        // gets no input rather than a NaN.
        const float norm = std::sqrt(std::max(0.0f, (1.0f - at) * (1.0f + at)));
        const float gx = 1.0f / (1.0f + std::exp(-gate_x[r + j]));
        h[size_t(j)] = at * h[size_t(j)] + norm * (gx * x[r + j]);
        y[r + j] = h[size_t(j)];
      }
    }
    if (h_last) std::copy(h.begin(), h.end(), h_last + s * W);
  }
}

}  // namespace gemmacpp::cpu::reference
