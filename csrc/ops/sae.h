#pragma once
#include <cstdint>
#include <string>

#include "csrc/core/tensor.h"

namespace gemmacpp::ops {

struct SaeEncodeResult {
  Tensor values, indices, offsets;  // sparse (CSR): float32 [nnz], int32 [nnz], int64 [M + 1]
  Tensor dense;                     // float32 [..., d_sae]
  Tensor pre;                       // float32 [..., d_sae], the pre-activations
};

// A sparse autoencoder's encoder: p = (x - b_dec) @ W_enc + b_enc, then `activation` ("relu",
// "jumprelu" with threshold [d_sae], "topk" with 1 <= k <= d_sae, or "identity"). x: [..., d_in]
// float32; W_enc: [d_in, d_sae] float32, float16 or bfloat16, read in place; b_enc, threshold:
// [d_sae], b_dec: [d_in] (any float dtype) or null. Returns the outputs asked for: the nonzero
// activations per row (sparse), the dense activations, the pre-activations.
SaeEncodeResult sae_encode(const TensorView& x, const TensorView& w_enc, const TensorView* b_enc,
                           const TensorView* threshold, int64_t k, const std::string& activation,
                           const TensorView* b_dec, bool sparse, bool dense, bool pre);

// The decoder on sparse activations: row m of the result is
// sum_{offsets[m] <= j < offsets[m + 1]} values[j] * W_dec[indices[j]] (+ b_dec).
// values float32 [nnz], indices int32/int64 [nnz] in [0, d_sae), offsets int64 [M + 1] from 0,
// non-decreasing, to nnz; W_dec [d_sae, d_out] float32/float16/bfloat16. Returns [M, d_out].
Tensor sae_decode(const TensorView& values, const TensorView& indices, const TensorView& offsets,
                  const TensorView& w_dec, const TensorView* b_dec, const TensorView* out);

// The same on dense activations [..., d_sae] (float32; only the nonzero entries are read from
// W_dec). Returns [..., d_out].
Tensor sae_decode_dense(const TensorView& acts, const TensorView& w_dec, const TensorView* b_dec,
                        const TensorView* out);

}  // namespace gemmacpp::ops
