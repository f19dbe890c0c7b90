#pragma once
#include <cstdint>
#include <vector>

#include "csrc/core/dtype.h"

namespace gemmacpp::cpu {

// What a sparse autoencoder's encoder applies to its pre-activations p = x @ W_enc + b_enc:
// identity (p itself), ReLU max(p, 0), JumpReLU (p where p > threshold and p > 0, else 0: SAELens'
// relu(p) * (p > threshold)), TopK (the k largest p of a row, ties to the lower index, then ReLU).
enum class SaeActivation : uint8_t { kIdentity, kReLU, kJumpReLU, kTopK };

struct SaeEncodeArgs {
  const float* x = nullptr;  // [M, K], rows ldx apart
  int64_t ldx = 0, M = 0, K = 0;
  DType wdt = DType::kF32;   // W_enc [K, N] (d_in x d_sae, as SAELens and Gemma Scope store it)
  const void* w = nullptr;   // float32, float16 or bfloat16, rows ldw apart, read in place
  int64_t ldw = 0, N = 0;
  const float* bias = nullptr;       // b_enc [N] or null
  const float* threshold = nullptr;  // [N], kJumpReLU only
  int64_t k = 0;                     // kTopK only, 1 <= k <= N
  SaeActivation act = SaeActivation::kReLU;
  float* pre = nullptr;    // optional [M, N] pre-activations, rows ldp apart
  int64_t ldp = 0;
  float* dense = nullptr;  // optional [M, N] activations, rows ldd apart
  int64_t ldd = 0;
  bool sparse = false;     // also return the nonzero activations of each row (SparseRows)
};

// Compressed rows: row m's nonzero activations are values[j] at feature indices[j] for
// offsets[m] <= j < offsets[m + 1], in increasing feature order.
struct SparseRows {
  std::vector<int64_t> offsets;
  std::vector<int32_t> indices;
  std::vector<float> values;
};

// One pass over x: each task multiplies a block of rows by a block of W_enc's columns, adds
// b_enc and applies the activation to that tile while it is in cache, writing the requested
// outputs (TopK keeps each row's best k candidates per column block and merges them per row).
// Work is split by shape alone: results are bitwise the same for any thread count.
SparseRows sae_encode(const SaeEncodeArgs& a);

// out[m, :] = sum_{offsets[m] <= j < offsets[m+1]} values[j] * W_dec[indices[j], :] (+ bias),
// summed in entry order then the bias added; W_dec [S, N] float32/float16/bfloat16, rows ldw apart.
// Only the active rows of W_dec are read.
void sae_decode(const int64_t* offsets, const int32_t* indices, const float* values, int64_t M,
                DType wdt, const void* w, int64_t ldw, int64_t N, const float* bias, float* out,
                int64_t ldo);

// The nonzero entries of dense activations acts [M, S] (rows lda apart), in feature order.
SparseRows sparse_rows(const float* acts, int64_t lda, int64_t M, int64_t S);

}  // namespace gemmacpp::cpu
