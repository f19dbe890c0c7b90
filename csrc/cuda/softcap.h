#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cuda {
// y = cap * tanh(x / cap) over n contiguous elements on `device` (default stream).
void softcap(DType dt, const void* x, void* y, int64_t n, float cap, int device);
}  // namespace gemmacpp::cuda
