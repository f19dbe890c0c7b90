// How linear layers (dense and quantized) and the SAE encoder's GEMM split their work into tasks. Target-independent; the
// splits depend on the shapes only, so results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>

#include "csrc/core/threads.h"

namespace gemmacpp::cpu::gemm {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// linear's tasks hold about this many weight bytes: big enough to amortise the task, small enough
// to balance the threads.
constexpr int64_t kMatvecTaskBytes = 64 << 10;
// The SAE encoder's GEMM tiling (sae.cc). Rows of x per tile: M is cut into ceil(M / kMaxRows)
// near-equal blocks, rounded up to the microkernel's 6 rows. Weight rows per tile: kCols. K slice
// packed at a time: kK. The packed panel (64 x 256 floats = 64 KiB) stays in L2 and
// one strip of it (16 KiB on AVX2) in L1; the x block (<= 512 x 256 floats) is read once per
// strip, 6 floats per 12 FMAs, which L2/L3 sustain. Bigger row blocks amortise the packing over
// more rows (measured +5% for 512 over 256 rows on an EPYC with 512 KiB L2 per core).
constexpr int64_t kMaxRows = 512, kRowGroup = 6, kCols = 64, kK = 256;

// Weight rows per task: about kMatvecTaskBytes of them, a multiple of 4 rows.
inline int64_t weight_rows_per_task(int64_t row_bytes) {
  return std::max<int64_t>(4, ceil_div(kMatvecTaskBytes / std::max<int64_t>(row_bytes, 1), 4) * 4);
}

// Calls fn(n0, nb) for blocks of weight rows of about kMatvecTaskBytes (a multiple of 4 rows), in
// parallel: every task takes all rows of x (the int8-activation kernels, quant_int8.cc, whose x
// is rounded once per call).
template <class Fn>
void for_each_matvec_block(int64_t N, int64_t row_bytes, const Fn& fn) {
  const int64_t rows = weight_rows_per_task(row_bytes);
  parallel_for(ceil_div(N, rows), [&](int64_t t, int) {
    const int64_t n0 = t * rows;
    fn(n0, std::min(rows, N - n0));
  });
}

// Rows of x per linear task: enough to share each block of weight rows (from L2) between many
// rows, few enough that prefill splits into tasks for every thread.
constexpr int64_t kRowTileRows = 64;

// Calls fn(m0, mb, n0, nb) for the tiles of linear's M x N output, in parallel: blocks of up to
// kRowTileRows rows of x times blocks of weight rows of about kMatvecTaskBytes (a multiple of 4
// rows). With M <= kRowTileRows (all of decode) the tasks are blocks of weight rows, each streamed
// from memory once.
template <class Fn>
void for_each_row_tile(int64_t M, int64_t N, int64_t row_bytes, const Fn& fn) {
  const int64_t rows = weight_rows_per_task(row_bytes);
  const int64_t n_blocks = ceil_div(N, rows);
  parallel_for(ceil_div(M, kRowTileRows) * n_blocks, [&](int64_t t, int) {
    const int64_t m0 = (t / n_blocks) * kRowTileRows, n0 = (t % n_blocks) * rows;
    fn(m0, std::min(kRowTileRows, M - m0), n0, std::min(rows, N - n0));
  });
}

}  // namespace gemmacpp::cpu::gemm
