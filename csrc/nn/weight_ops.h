// Small pieces a forward pass is built from, over weights bound by name from a WeightFile: the
// lookup of a dense weight with its shape check, x W^T + b and embedding rows (dense float32,
// float16, bfloat16, or GGML-quantized weights read in place), float32 copies of small tensors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "csrc/io/weights.h"

namespace gemmacpp::model_ops {

// The tensor `name` of `f`, which must have `shape` and a float dtype (ValueError / TypeError /
// NotImplementedError naming the file and the tensor otherwise).
const WeightTensor& dense_weight(const WeightFile& f, const std::string& name,
                                 const std::vector<int64_t>& shape);

// Its elements as float32, in C order (for small tensors: biases, conv taps, norms).
std::vector<float> to_f32(const WeightTensor& t);

// out[M, N] = x[M, K] W^T (+ bias) for W [N, K] read in place in its stored dtype or GGML type.
void linear(const float* x, int64_t M, const WeightTensor& w, const float* bias, float* out);

// Rows `tokens` of the embedding E [V, d] (dense or GGML-quantized), times scale, into x [M, d]
// float32.
void embed_rows(const WeightTensor& e, const int64_t* tokens, int64_t M, float scale, float* x);

void add_into(float* x, const float* y, int64_t n);  // x += y, over all threads when large

}  // namespace gemmacpp::model_ops
