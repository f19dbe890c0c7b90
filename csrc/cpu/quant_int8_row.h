// One row of x rounded to int8 for linear_quantized_int8's kernels (quant_int8.cc and its -inl.h
// files): the arrays QuantizeRow fills.
#pragma once

#include <cstdint>

namespace gemmacpp::cpu::int8 {
// One row of x rounded to int8: K values, one scale per activation block, one sum per 16 values.
struct XRow {
  const int8_t* q;
  const float* d;
  const int16_t* s16;
  const float* ds;  // 32-value blocks: d * (the block's sum of q), for the mins and offsets
  const float* d8;  // 32-value blocks: d eight times (a vector load of two blocks' scales)
  // 32-value blocks: -offset * (the block's sum of q), then seven zeros, where offset is what the
  // kernels subtract from the weights' unsigned values (8 for Q4_0, 16 for Q5_0; else 0:
  // unused).
  const int32_t* nsum8;
};
}  // namespace gemmacpp::cpu::int8
