// Quantized weights: dequantization and linear. See quant.h; per-target pieces in quant-inl.h
// (block decoders and the R x C tile of dot products). linear_quantized has one path for any M,
// so that a row of the output is bitwise the same computed alone (decode), in a batch of any size
// (prefill, ragged batches, last_only heads, MoE expert groups) and on any thread count: tasks
// (gemm_tiling.h's for_each_row_tile) own up to 64 rows of x times ~64 KiB of weight rows and run
// tiles of R rows of x times C weight rows over them, each (row, weight row) pair getting the
// operations it gets alone (quant-inl.h). Decode streams every weight row from memory once; with
// more rows the task's weight rows are re-read from L2 per group of R rows. Every type decodes
// its blocks in registers on every target compiled today (a vector wider than 16 lanes would
// fall back to expanding each row into an L1 buffer).
#include "csrc/cpu/quant.h"

#include <algorithm>

#include "csrc/core/threads.h"
#include "csrc/cpu/gemm_tiling.h"
#include "csrc/cpu/linear.h"
#include "hwy/aligned_allocator.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/quant.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "csrc/cpu/simd-inl.h"
#include "csrc/cpu/gemm-inl.h"
#include "csrc/cpu/quant-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

// Expands one row of `blocks` blocks into out with the scalar block functions (the generic path
// of a vector width without fused kernels): bitwise the values dequantize gives.
HWY_INLINE void DequantizeRow(QType t, const uint8_t* row, size_t blocks, float* out) {
  const QTypeInfo info = qtype_info(t);
  with_block_fn(t, [&](auto k) {
    for (size_t b = 0; b < blocks; ++b) {
      decltype(k)::expand(row + b * info.block_bytes, out + b * info.block_values);
    }
  });
}

// Weight rows prefetched ahead of the tile being computed, spread over the tile's block loop
// (QuantDotTile's `ahead`), up to `readable` rows from the task's first: on one thread the end of
// the matrix, so that a task's last tiles fetch the first rows of the next task, the next one run
// (linear_quantized). Measured on an EPYC (Zen 4, one thread, contended):
// the head streamed from memory at 25-26 GB/s as one row at a time with the next rows' lines
// prefetched in a burst per row, 33 GB/s as four-row tiles with the lines 8 rows ahead spread
// over the tile (a burst of four rows' lines made four-row tiles slower than single rows; 16 or
// 32 rows ahead were slower again).
constexpr size_t kPrefetchRows = 8;

// Tiles of R rows of x (up to kQuantRows) times C weight rows: on AVX-512 (32 registers, two
// vectors a 32-value chunk) 1-2 x 4 or 3-4 x 2, i.e. up to 16 accumulators beside the decoded
// chunks; on 16-register targets 1 x 2 or 2 x 1 (AVX2's chunks are 4 vectors a row), and 1 x 1
// where a chunk takes 8 vectors or more.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr size_t kQuantRows = 4;
constexpr size_t QuantCols(size_t R) { return R <= 2 ? 4 : 2; }
#else
constexpr size_t kQuantRows = 2;
constexpr size_t QuantCols(size_t R) {
  return R == 1 && hn::MaxLanes(hn::ScalableTag<float>()) >= 8 ? 2 : 1;
}
#endif

template <class DF> using DecodeQ4_0 = DecodeQ4Q5<DF, false, false>;
template <class DF> using DecodeQ4_1 = DecodeQ4Q5<DF, false, true>;
template <class DF> using DecodeQ5_0 = DecodeQ4Q5<DF, true, false>;
template <class DF> using DecodeQ5_1 = DecodeQ4Q5<DF, true, true>;
template <class DF> using DecodeQ4_K = DecodeQ45_K<DF, false>;
template <class DF> using DecodeQ5_K = DecodeQ45_K<DF, true>;

// Whether type t has register-decoding kernels on this target (all types, for vectors of up to
// 16 lanes: every target compiled today).
bool MatvecFused(QType t) { return QuantKernelsFit(); }

// R rows of x times `rows` weight rows (w at the first, row_bytes apart), C at a time; out and
// bias point at the first of these output columns.
template <size_t R, template <class> class Decode, size_t C = QuantCols(R)>
HWY_INLINE void RowsTimesBlock(const float* x, size_t ldx, const uint8_t* w, size_t row_bytes,
                               size_t rows, size_t readable, size_t blocks, const float* bias,
                               float* out, size_t ldo) {
  for (size_t c0 = 0; c0 < rows; c0 += C) {
    const size_t cols = std::min(C, rows - c0);
    const uint8_t* ahead =
        c0 + kPrefetchRows + C <= readable ? w + (c0 + kPrefetchRows) * row_bytes : nullptr;
    float dot[R * C];
    QuantDotTile<R, C, Decode>(x, ldx, w + c0 * row_bytes, row_bytes, cols, blocks, dot, C, ahead);
    for (size_t r = 0; r < R; ++r) {
      float* o = out + r * ldo + c0;
      for (size_t c = 0; c < cols; ++c) o[c] = bias ? dot[r * C + c] + bias[c0 + c] : dot[r * C + c];
    }
  }
}

// More rows than one tile's: each group of kBufferCols weight rows is decoded once into float32
// rows (L1), then every group of kBufferRows rows of x runs DecodedDotTile over them: the same
// values and the same operations as the register path, with the decoding shared by all M rows
// instead of R.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr size_t kBufferRows = 4, kBufferCols = 4;
#else
constexpr size_t kBufferRows = 2, kBufferCols = 4;
#endif

template <template <class> class Decode>
HWY_INLINE void QuantRows(const float* x, size_t ldx, size_t M, const uint8_t* w,
                          size_t row_bytes, size_t rows, size_t readable, size_t blocks,
                          const float* bias, float* out, size_t ldo) {
  if (M > kQuantRows) {
    constexpr size_t R = kBufferRows, C = kBufferCols;
    const size_t K = blocks * Decode<hn::ScalableTag<float>>::kValues;
    static thread_local hwy::AlignedFreeUniquePtr<float[]> buf_owner;
    static thread_local size_t buf_cap = 0;
    float* buf = ScratchFloats(buf_owner, buf_cap, C * K);
    for (size_t c0 = 0; c0 < rows; c0 += C) {
      const size_t cols = std::min(C, rows - c0);
      for (size_t c = 0; c < cols; ++c) DecodeRow<Decode>(w + (c0 + c) * row_bytes, blocks, buf + c * K);
      size_t m0 = 0;
      const auto tile = [&](auto rows_tag) {
        constexpr size_t kR = decltype(rows_tag)::value;
        float dot[kR * C];
        DecodedDotTile<kR, C>(x + m0 * ldx, ldx, buf, K, cols, K, dot, C);
        for (size_t r = 0; r < kR; ++r) {
          float* o = out + (m0 + r) * ldo + c0;
          for (size_t c = 0; c < cols; ++c) o[c] = bias ? dot[r * C + c] + bias[c0 + c] : dot[r * C + c];
        }
      };
      for (; m0 + R <= M; m0 += R) tile(std::integral_constant<size_t, R>());
      for (; m0 < M; ++m0) tile(std::integral_constant<size_t, 1>());
    }
    return;
  }
  // One x row (decode) takes tiles of several weight rows too: a row's result is one FMA chain
  // per accumulator (two per row), whose latency (4 cycles on Zen 4) bounds a lone row at one
  // 32-value block per 4 cycles; C rows run C times as many independent chains.
  switch (M) {
    case 1: return RowsTimesBlock<1, Decode>(x, ldx, w, row_bytes, rows, readable, blocks, bias, out, ldo);
    case 2: return RowsTimesBlock<2, Decode>(x, ldx, w, row_bytes, rows, readable, blocks, bias, out, ldo);
    case 3: return RowsTimesBlock<3, Decode>(x, ldx, w, row_bytes, rows, readable, blocks, bias, out, ldo);
    default: return RowsTimesBlock<4, Decode>(x, ldx, w, row_bytes, rows, readable, blocks, bias, out, ldo);
  }
}

// M rows of x times `rows` weight rows (w at the first, row_bytes apart; `readable` rows from w
// are the matrix's, for prefetching); out and bias point at the first of these output columns.
void QuantTile(QType t, const float* x, size_t ldx, size_t M, size_t K, const uint8_t* w,
               size_t row_bytes, size_t rows, size_t readable, const float* bias, float* out,
               size_t ldo) {
  const QTypeInfo info = qtype_info(t);
  const size_t blocks = K / info.block_values;
  if (!QuantKernelsFit()) {  // no fused kernels: expand each weight row, then a float dot per row
    static thread_local hwy::AlignedFreeUniquePtr<float[]> row_buf;
    static thread_local size_t row_cap = 0;
    float* wf = ScratchFloats(row_buf, row_cap, K);
    for (size_t r = 0; r < rows; ++r) {
      DequantizeRow(t, w + r * row_bytes, blocks, wf);
      for (size_t m = 0; m < M; ++m) {
        float d;
        DotTile<1, 1>(x + m * ldx, ldx, static_cast<const float*>(wf), K, 1, K, &d, 1);
        out[m * ldo + r] = bias ? d + bias[r] : d;
      }
    }
    return;
  }
  switch (t) {
    case QType::kQ8_0: return QuantRows<DecodeQ8_0>(x, ldx, M, w, row_bytes, rows, readable, blocks, bias, out, ldo);
    case QType::kQ4_0: return QuantRows<DecodeQ4_0>(x, ldx, M, w, row_bytes, rows, readable, blocks, bias, out, ldo);
    case QType::kQ4_1: return QuantRows<DecodeQ4_1>(x, ldx, M, w, row_bytes, rows, readable, blocks, bias, out, ldo);
    case QType::kQ5_0: return QuantRows<DecodeQ5_0>(x, ldx, M, w, row_bytes, rows, readable, blocks, bias, out, ldo);
    case QType::kQ5_1: return QuantRows<DecodeQ5_1>(x, ldx, M, w, row_bytes, rows, readable, blocks, bias, out, ldo);
    case QType::kQ2_K: return QuantRows<DecodeQ2_K>(x, ldx, M, w, row_bytes, rows, readable, blocks, bias, out, ldo);
    case QType::kQ3_K: return QuantRows<DecodeQ3_K>(x, ldx, M, w, row_bytes, rows, readable, blocks, bias, out, ldo);
    case QType::kQ4_K: return QuantRows<DecodeQ4_K>(x, ldx, M, w, row_bytes, rows, readable, blocks, bias, out, ldo);
    case QType::kQ5_K: return QuantRows<DecodeQ5_K>(x, ldx, M, w, row_bytes, rows, readable, blocks, bias, out, ldo);
    case QType::kQ6_K: return QuantRows<DecodeQ6_K>(x, ldx, M, w, row_bytes, rows, readable, blocks, bias, out, ldo);
  }
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(QuantTile);
HWY_EXPORT(MatvecFused);

using namespace gemm;

void dequantize(QType t, const uint8_t* data, int64_t n, int64_t k, float* out) {
  const QTypeInfo info = qtype_info(t);
  const int64_t blocks = k / info.block_values, row_bytes = blocks * info.block_bytes;
  // Plain scalar code (no per-target FMA contraction): bitwise the reference's float32 maths.
  const int64_t rows = std::max<int64_t>(1, (64 << 10) / std::max<int64_t>(row_bytes, 1));
  parallel_for(ceil_div(n, rows), [&](int64_t task, int) {
    const int64_t r1 = std::min(n, (task + 1) * rows);
    for (int64_t r = task * rows; r < r1; ++r) {
      for (int64_t b = 0; b < blocks; ++b) {
        dequantize_block(t, data + r * row_bytes + b * info.block_bytes,
                         out + r * k + b * info.block_values);
      }
    }
  });
}

bool quantized_matvec_fused(QType t) { return HWY_DYNAMIC_DISPATCH(MatvecFused)(t); }

void linear_quantized(const float* x, int64_t ldx, int64_t M, int64_t K, QType t, const uint8_t* w,
                      int64_t N, const float* bias, float* out, int64_t ldo, int64_t stride_bytes) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  const QTypeInfo info = qtype_info(t);
  const int64_t row_bytes = stride_bytes ? stride_bytes : K / info.block_values * info.block_bytes;
  // Prefetching runs on into the next task's rows only on one thread, where that task is the next
  // one run; with more threads another core reads them, and its own fetch would make them twice
  // the traffic.
  const bool one_thread = get_num_threads() == 1;
  for_each_row_tile(M, N, row_bytes, [&](int64_t m0, int64_t mb, int64_t n0, int64_t nb) {
    HWY_DYNAMIC_DISPATCH(QuantTile)(t, x + m0 * ldx, ldx, mb, K, w + n0 * row_bytes, row_bytes, nb,
                                    one_thread ? N - n0 : nb, bias ? bias + n0 : nullptr,
                                    out + m0 * ldo + n0, ldo);
  });
}

}  // namespace gemmacpp::cpu
#endif
