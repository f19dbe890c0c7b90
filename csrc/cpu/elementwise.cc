#include "csrc/cpu/elementwise.h"

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

}  // namespace gemmacpp::cpu
