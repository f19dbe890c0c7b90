// Quantized weights: dequantization and linear. See quant.h; per-target pieces in quant-inl.h
// (fused block dot products over R rows of x). linear_quantized has one path for any M, so that a
// row of the output is bitwise the same computed alone (decode), in a batch of any size (prefill,
// ragged batches, last_only heads, MoE expert groups) and on any thread count: tasks
// (gemm_tiling.h's for_each_row_tile) own up to 64 rows of x times ~64 KiB of weight rows; each
// weight row's blocks are decoded in registers once per group of R rows of x and applied to each
// row with exactly the operations that row gets alone (quant-inl.h). Decode streams every weight
// row from memory once; with more rows the task's weight rows are re-read from L2 per group.
// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the K-quants have fused kernels on every x86 target (a vector
// wider than 16 lanes would fall back to expanding each row into an L1 buffer).
#include "csrc/cpu/quant.h"

#include <algorithm>

#include "csrc/core/threads.h"
#include "csrc/cpu/gemm_tiling.h"
#include "csrc/cpu/linear.h"
#include "hwy/aligned_allocator.h"
#include "hwy/cache_control.h"

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

constexpr size_t kPrefetchRows = 4;

// Rows of x per kernel call: AVX-512's 32 registers hold four rows' accumulators beside the
// decoded block; 16-register targets take 2.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr size_t kQuantRows = 4;
#else
constexpr size_t kQuantRows = 2;
#endif

// A row's dot products with R rows of x, read straight from the blocks:
// (x, ldx, xsum, ldxs, w, blocks, out, ldo).
using DotFn = void (*)(const float*, size_t, const float*, size_t, const uint8_t*, size_t, float*,
                       size_t);

// The fused kernel for type t and R rows on this target, or null: none for this type and vector
// width, and each row is expanded into an L1 buffer instead (several times slower).
template <size_t R>
DotFn SelectDot(QType t) {
  if (QuantKernelsFit()) {
    if (t == QType::kQ4_K) return DotQ45_K<false, R>;
    if (t == QType::kQ5_K) return DotQ45_K<true, R>;
    if (t == QType::kQ6_K) return DotQ6_K<R>;
    if (t == QType::kQ2_K) return DotQ2_K<R>;
    if (t == QType::kQ3_K) return DotQ3_K<R>;
    if (t == QType::kQ8_0) return DotQ8_0<R>;
  }
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  // Whole 16-lane half-blocks: faster than the 8-lane kernel run on AVX-512's 256-bit halves
  // (measured on an EPYC, one thread, Q5_0: 14-15 against 11.3-11.7 GB/s; AVX2 11-11.5).
  if (t == QType::kQ4_0) return DotQ4Q5x16<false, false, R>;
  if (t == QType::kQ4_1) return DotQ4Q5x16<false, true, R>;
  if (t == QType::kQ5_0) return DotQ4Q5x16<true, false, R>;
  if (t == QType::kQ5_1) return DotQ4Q5x16<true, true, R>;
#else
  // Vectors of up to 8 lanes; a wider target (other than AVX-512) takes 8 of them.
  using D8 = hn::CappedTag<float, 8>;
  if (t == QType::kQ4_0) return DotQ4Q5<D8, false, false, R>;
  if (t == QType::kQ4_1) return DotQ4Q5<D8, false, true, R>;
  if (t == QType::kQ5_0) return DotQ4Q5<D8, true, false, R>;
  if (t == QType::kQ5_1) return DotQ4Q5<D8, true, true, R>;
#endif
  return nullptr;
}

bool MatvecFused(QType t) { return SelectDot<1>(t) != nullptr; }

// M rows of x times `rows` weight rows (w at the first, row_bytes apart); out and bias point at
// the first of these output columns.
void QuantTile(QType t, const float* x, size_t ldx, size_t M, size_t K, const uint8_t* w,
               size_t row_bytes, size_t rows, const float* bias, float* out, size_t ldo) {
  const QTypeInfo info = qtype_info(t);
  const size_t blocks = K / info.block_values;
  const DotFn dots[4] = {SelectDot<1>(t), SelectDot<2>(t), SelectDot<3>(t), SelectDot<4>(t)};
  // Sums of each x row over every 32 values (for the mins and offsets): M * K / 32 floats,
  // each formed in a fixed order.
  static thread_local hwy::AlignedFreeUniquePtr<float[]> xsum_buf;
  static thread_local size_t xsum_cap = 0;
  const size_t groups = K / 32;
  float* xsum = ScratchFloats(xsum_buf, xsum_cap, M * groups + 1);
  // Only the types with mins read them (not Q8_0, the head's type: its tasks are many and short,
  // and summing x in each was a few percent of a decode step).
  const bool needs_xsum = t == QType::kQ4_1 || t == QType::kQ5_1 || t == QType::kQ4_K ||
                          t == QType::kQ5_K;
  if (dots[0] && needs_xsum) {
    for (size_t m = 0; m < M; ++m) {
      for (size_t g = 0; g < groups; ++g) {
        const float* xg = x + m * ldx + 32 * g;
        float acc = 0.0f;
        for (size_t i = 0; i < 32; ++i) acc += xg[i];
        xsum[m * groups + g] = acc;
      }
    }
  }
  const auto add_bias = [&](float* o, size_t R, size_t r) {
    if (bias) {
      for (size_t i = 0; i < R; ++i) o[i * ldo] = o[i * ldo] + bias[r];
    }
  };
  if (!dots[0]) {  // no fused kernel: expand each weight row, then a float dot per row of x
    static thread_local hwy::AlignedFreeUniquePtr<float[]> row_buf;
    static thread_local size_t row_cap = 0;
    float* wf = ScratchFloats(row_buf, row_cap, K);
    for (size_t r = 0; r < rows; ++r) {
      DequantizeRow(t, w + r * row_bytes, blocks, wf);
      for (size_t m = 0; m < M; ++m) DotTile<1, 1>(x + m * ldx, ldx, static_cast<const float*>(wf), K, 1, K, out + m * ldo + r, 1);
      add_bias(out + r, M, r);
    }
    return;
  }
  for (size_t m0 = 0; m0 < M; m0 += kQuantRows) {
    const size_t R = std::min(kQuantRows, M - m0);
    const DotFn dot = dots[R - 1];
    for (size_t r = 0; r < rows; ++r) {
      const uint8_t* wr = w + r * row_bytes;
      // The kernels spend long enough on each row that the hardware prefetchers fall behind the
      // stream; ask for the row kPrefetchRows ahead explicitly (within this task's rows).
      if (r + kPrefetchRows < rows) {
        const uint8_t* ahead = wr + kPrefetchRows * row_bytes;
        for (size_t off = 0; off < row_bytes; off += 64) hwy::Prefetch(ahead + off);
      }
      float* o = out + m0 * ldo + r;
      dot(x + m0 * ldx, ldx, xsum + m0 * groups, groups, wr, blocks, o, ldo);
      add_bias(o, R, r);
    }
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
                      int64_t N, const float* bias, float* out, int64_t ldo) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  const QTypeInfo info = qtype_info(t);
  const int64_t row_bytes = K / info.block_values * info.block_bytes;
  for_each_row_tile(M, N, row_bytes, [&](int64_t m0, int64_t mb, int64_t n0, int64_t nb) {
    HWY_DYNAMIC_DISPATCH(QuantTile)(t, x + m0 * ldx, ldx, mb, K, w + n0 * row_bytes, row_bytes, nb,
                                    bias ? bias + n0 : nullptr, out + m0 * ldo + n0, ldo);
  });
}

}  // namespace gemmacpp::cpu
#endif
