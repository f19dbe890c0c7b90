#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cuda {
// y = gelu_tanh(x) over n contiguous elements on `device` (default stream); x and y may alias.
void gelu_tanh(DType dt, const void* x, void* y, int64_t n, int device);
// y = gelu_tanh(gate) * up over n contiguous elements; y may alias gate or up.
void geglu(DType dt, const void* gate, const void* up, void* y, int64_t n, int device);
}  // namespace gemmacpp::cuda
