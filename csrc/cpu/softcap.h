#pragma once
#include <cstdint>
#include "csrc/core/dtype.h"

namespace gemmacpp::cpu {
// y = cap * tanh(x / cap) over n contiguous elements of dtype dt (x and y may alias).
void softcap(DType dt, const void* x, void* y, int64_t n, float cap);
}  // namespace gemmacpp::cpu
