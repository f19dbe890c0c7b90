// The RG-LRU recurrence written out in plain steps (llm.c's habit: a reference beside the fast
// kernel it shadows). The fused kernel (csrc/cpu/rg_lru) keeps the recurrence weights a_t in
// registers; when a hook asks for them (blocks.{i}.rglru.hook_a) they are formed here, and when a
// hook changes them the scan runs here on the edited values.
#pragma once

#include <cstdint>
#include <vector>

#include "csrc/core/dtype.h"

namespace gemmacpp::cpu::reference {

// a[r, j] = exp(-c * sigmoid(gate_a[r, j]) * softplus(a_param[j])) for `rows` packed rows of
// width W, and 0 where reset[r] (a segment start), as the fused kernel uses them. a_param: W
// elements of a_dtype (any float dtype).
std::vector<float> rg_lru_recurrence_weights(const float* gate_a, const uint8_t* reset, int64_t rows,
                                             int64_t W, DType a_dtype, const void* a_param, float c);

// nb sequences of n rows each (row s * n + t): h_t = a_t h_{t-1} + sqrt(1 - a_t^2) sigmoid(gate_x_t)
// x_t, with the sqrt factor taken from the given a (1 where a is 0: a segment start), from h0
// [nb, W] (null: zeros); every h_t to y, the last to h_last [nb, W] when not null (may alias h0).
void rg_lru_scan(const float* a, const float* x, const float* gate_x, int64_t nb, int64_t n, int64_t W,
                 const float* h0, float* y, float* h_last);

}  // namespace gemmacpp::cpu::reference
