#include "csrc/cpu/add.h"

#include "csrc/core/threads.h"

namespace gemmacpp::cpu {

void add_into(float* x, const float* y, int64_t n) {
  parallel_chunks(n, int64_t(1) << 16, [&](int64_t begin, int64_t len) {
    for (int64_t i = begin; i < begin + len; ++i) x[i] += y[i];
  });
}

}  // namespace gemmacpp::cpu
