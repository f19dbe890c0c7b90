#pragma once
#include <string>

#include "csrc/core/activations.h"
#include "csrc/core/tensor.h"

namespace gemmacpp::ops {
// x @ weight.T (+ bias), as torch.nn.functional.linear. x: [..., K] float32; weight: [N, K]
// float32, float16 or bfloat16, read in place; bias: [N] (any float dtype) or null.
// Returns [..., N] float32.
Tensor linear(const TensorView& x, const TensorView& weight, const TensorView* bias = nullptr,
              const TensorView* out = nullptr);

// The same with a GGML block-quantized weight: `data` holds the raw blocks of an [n, k] matrix of
// type `qtype` (see dequantize.h), read in place, never expanded as a whole; k must equal x's K.
// activations: Activations::kInt8 rounds x to int8 per block before the products (llama.cpp's
// arithmetic, csrc/cpu/quant_int8.h) instead of the exact float32 products.
Tensor linear_quantized(const TensorView& x, const TensorView& data, const std::string& qtype,
                        int64_t n, int64_t k, const TensorView* bias = nullptr,
                        const TensorView* out = nullptr,
                        Activations activations = Activations::kFloat32);

// The activation mode named `name` ("float32" or "int8"); a ValueError naming `who` otherwise.
Activations activations_mode(const std::string& name, const char* who);
}  // namespace gemmacpp::ops
