#include "csrc/cpu/elementwise.h"

#include <algorithm>

#include "csrc/core/threads.h"

namespace gemmacpp::cpu {

namespace {
constexpr int64_t kChunk = int64_t(1) << 16;
}  // namespace

void add_into(float* x, const float* y, int64_t n) {
  parallel_chunks(n, kChunk, [&](int64_t begin, int64_t len) {
    for (int64_t i = begin; i < begin + len; ++i) x[i] += y[i];
  });
}

void scale_into(float* x, float s, int64_t n) {
  parallel_chunks(n, kChunk, [&](int64_t begin, int64_t len) {
    for (int64_t i = begin; i < begin + len; ++i) x[i] *= s;
  });
}

void mean_of_parts(const float* x, int64_t parts, int64_t n, float* out) {
  parallel_chunks(n, kChunk, [&](int64_t begin, int64_t len) {
    for (int64_t i = begin; i < begin + len; ++i) {
      float s = x[i];
      for (int64_t p = 1; p < parts; ++p) s += x[p * n + i];
      out[i] = s / float(parts);
    }
  });
}

void scale_columns(const float* x, const float* scale, int64_t rows, int64_t d, float* out) {
  if (d <= 0) return;
  parallel_chunks(rows, std::max<int64_t>(1, kChunk / d), [&](int64_t begin, int64_t len) {
    for (int64_t r = begin; r < begin + len; ++r) {
      for (int64_t j = 0; j < d; ++j) out[r * d + j] = x[r * d + j] * scale[j];
    }
  });
}

}  // namespace gemmacpp::cpu
