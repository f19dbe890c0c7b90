#pragma once
#include <string>

#include "csrc/core/tensor.h"
#include "csrc/cpu/quant_blocks.h"

namespace gemmacpp::ops {

// The [n, k] float32 matrix held by `data`, the raw GGML blocks (uint8, any shape, read in
// order) of type `qtype` ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K" ... "Q6_K").
Tensor dequantize(const TensorView& data, const std::string& qtype, int64_t n, int64_t k);

// Checks shared by the ops that read quantized blocks: the type is supported, data is uint8 on
// the CPU, k is a multiple of the block size and data holds exactly n rows of k values. Returns
// the type; `data` is made contiguous (a copy in `keep` when it is not).
cpu::QType check_quantized(const char* op, const TensorView& data, const std::string& qtype,
                           int64_t n, int64_t k, const TensorView** dense_data, Tensor& keep);

}  // namespace gemmacpp::ops
