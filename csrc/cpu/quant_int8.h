// linear with GGML block-quantized weights and int8 activations (the opt-in mode of llama.cpp's
// CPU backend): each row of x is first rounded to int8 per block, then every weight block meets
// its x block in exact integer dot products, and only the block's scales are applied in float32.
//
// How x is rounded (per row, the same on every SIMD target):
// - blocks of 32 values for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (llama.cpp's Q8_0/Q8_1 activations), of
//   256 for the K-quants (its Q8_K), with the sums of the int8 values over every 16;
// - scale d = amax / 127 (amax: the block's largest |x|), q = round-to-nearest-even(x * (127 /
//   amax)) in float32 arithmetic, so |q| <= 127; an all-zero block has d = 0 and q = 0. Unlike
//   llama.cpp, d stays a float32 (its Q8_0 rounds d to a half) and Q8_K's scale comes from |x|'s
//   maximum (llama.cpp maps the signed extreme to -127): the same resolution either way.
// A weight block then contributes d_w * d_x * sum(q_w * q_x) (+ the min or offset term, through
// the sums of q_x), the integer sums exact, the float terms added block by block in K's order:
// - AVX3_DL, AVX3 and AVX2: Q4_0, Q5_0, Q4_1, Q5_1, Q4_K, Q5_K, Q6_K: per output
//   one float32 chain, acc = fma(float(isum_b), d_w * d_x, acc), then for the types with a min
//   acc = fma(m_w, d_x * xsum_b, acc) (Q4_1, Q5_1) or acc = fnmadd(float(aux_b), dmin * d_x, acc)
//   (Q4_K, Q5_K; aux_b = sum_j m_j * xsum_j), with isum_b the block's whole integer sum
//   (quant_int8_avx512-inl.h, quant_int8_avx2-inl.h);
// - the other targets and types (Q8_0, Q2_K, Q3_K everywhere): the block's integer sums per 4
//   values (lanes) scaled and added lane-wise, the lanes summed at the end (quant_int8_lanes-inl.h).
//   Q8_0 keeps these on AVX3_DL too: its matrix-vector product (the default model's head, most of
//   a decode step's bytes) streams about 15 % faster so than with the whole-block kernels, which
//   must move each row's block scales into their reduction (measured: 34.0 against 29.6 GB/s on
//   one Zen 4 core); its GEMM is slower (191 against 562 GOP/s at M = 32), which the default
//   model's prefill hardly sees (its only other Q8_0 matrices are some layers' v, 1.6 MB).
// So row m's output depends on row m of x and the weights only: bitwise the same whatever M, the
// other rows and the thread count (batch invariance by construction); the targets may differ.
#pragma once

#include <cstdint>

#include "csrc/cpu/quant_blocks.h"

namespace gemmacpp::cpu {

// Values per activation block for weights of type t: 32, or 256 for the K-quants.
int int8_activation_block(QType t);

// out[m * ldo + n] = sum over blocks of the products above (+ bias[n]); arguments as
// linear_quantized (csrc/cpu/quant.h), stride_bytes included. K is a multiple of t's block size.
void linear_quantized_int8(const float* x, int64_t ldx, int64_t M, int64_t K, QType t,
                           const uint8_t* w, int64_t N, const float* bias, float* out, int64_t ldo,
                           int64_t stride_bytes = 0);

}  // namespace gemmacpp::cpu
