#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cpu {
// y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) over n contiguous elements of dtype dt
// (x and y may alias).
void gelu_tanh(DType dt, const void* x, void* y, int64_t n);
// y = gelu_tanh(gate) * up over n contiguous elements, all three of dtype dt (y may alias either
// input).
void geglu(DType dt, const void* gate, const void* up, void* y, int64_t n);
}  // namespace gemmacpp::cpu
