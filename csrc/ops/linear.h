#pragma once
#include <string>

#include "csrc/core/tensor.h"

namespace gemmacpp::ops {
// x @ weight.T (+ bias), as torch.nn.functional.linear. x: [..., K] float32; weight: [N, K]
// float32, float16 or bfloat16, read in place; bias: [N] (any float dtype) or null.
// Returns [..., N] float32.
Tensor linear(const TensorView& x, const TensorView& weight, const TensorView* bias = nullptr,
              const TensorView* out = nullptr);

// The same with a GGML block-quantized weight: `data` holds the raw blocks of an [n, k] matrix of
// type `qtype` (see dequantize.h), read in place, never expanded as a whole; k must equal x's K.
Tensor linear_quantized(const TensorView& x, const TensorView& data, const std::string& qtype,
                        int64_t n, int64_t k, const TensorView* bias = nullptr,
                        const TensorView* out = nullptr);
}  // namespace gemmacpp::ops
