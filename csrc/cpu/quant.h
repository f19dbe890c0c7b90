// CPU kernels for GGML block-quantized weights (formats in quant_blocks.h): dequantization to
// float32, and linear (x @ w.T) that reads the quantized blocks in place.
#pragma once

#include <cstdint>

#include "csrc/cpu/quant_blocks.h"

namespace gemmacpp::cpu {

// out[n * k + j] = value j of row n, for an [n, k] matrix of qtype t stored as n rows of
// k / block_values blocks. k is a multiple of the block size. Multithreaded over rows.
void dequantize(QType t, const uint8_t* data, int64_t n, int64_t k, float* out);

// out[m * ldo + n] = sum_j x[m * ldx + j] * W[n][j] (+ bias[n]) for m < M, n < N, j < K, where W
// is the [N, K] matrix of qtype t at w (rows back to back, never expanded as a whole), its blocks
// dequantized in registers. Row m of out is bitwise the same whatever M, the other rows of x and
// the thread count (on a given SIMD target).
// Whether linear_quantized, on the target kernels dispatch to now, reads
// qtype t's blocks in registers (false: it expands each weight row into a buffer first, a
// generic path several times slower). Tests check it on every target.
bool quantized_matvec_fused(QType t);

// stride_bytes: the distance between W's rows (0: K's blocks back to back); a longer one reads the
// first K values (whole blocks) of longer stored rows, a column slice of a bigger matrix.
void linear_quantized(const float* x, int64_t ldx, int64_t M, int64_t K, QType t, const uint8_t* w,
                      int64_t N, const float* bias, float* out, int64_t ldo, int64_t stride_bytes = 0);

}  // namespace gemmacpp::cpu
