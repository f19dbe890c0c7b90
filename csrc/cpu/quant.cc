// Quantized weights: dequantization and linear. See quant.h; per-target pieces in quant-inl.h
// (fused block dot products) and gemm-inl.h (panel packing and microkernel).
// - matrix-vector (M <= kMatvecMaxRows): tasks own fixed ranges of weight rows; each row's blocks
//   are read once from memory and, while they sit in L1, dotted with every row of x. Q8_0, Q4_0,
//   Q4_1, Q5_0, Q5_1 and the K-quants dequantize in registers (a vector wider than 16 lanes
//   falls back to expanding the K-quant and Q8_0 rows into an L1 buffer).
// - GEMM: as linear.cc's blocked path, but each K-slice of a tile's weight rows is dequantized
//   into a float32 row buffer and packed into the panel; the whole matrix is never expanded.
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

// Expands blocks [b0, b0 + count) of one row into out (count * block_values floats): in vectors
// (quant-inl.h) for all types but Q2_K and Q3_K, which take their scalar block functions inlined
// here, in code compiled for this target. Bitwise the values dequantize_block gives.
template <class Expand>
HWY_INLINE void ExpandEach(const uint8_t* p, size_t bytes, size_t values, size_t count,
                           float* out, const Expand& expand) {
  for (size_t b = 0; b < count; ++b) expand(p + b * bytes, out + b * values);
}

HWY_INLINE void DequantizeBlocks(QType t, const uint8_t* row, size_t b0, size_t count, float* out) {
  const QTypeInfo info = qtype_info(t);
  const uint8_t* p = row + b0 * info.block_bytes;
  const size_t bytes = info.block_bytes, values = info.block_values;
  using D16 = hn::CappedTag<float, 16>;
  using D8 = hn::CappedTag<float, 8>;
  switch (t) {
    case QType::kQ8_0: return ExpandEach(p, bytes, values, count, out, ExpandQ8_0<D16>);
    case QType::kQ4_0:
      return ExpandEach(p, bytes, values, count, out, ExpandQ4Q5<D8, false, false>);
    case QType::kQ4_1:
      return ExpandEach(p, bytes, values, count, out, ExpandQ4Q5<D8, false, true>);
    case QType::kQ5_0:
      return ExpandEach(p, bytes, values, count, out, ExpandQ4Q5<D8, true, false>);
    case QType::kQ5_1:
      return ExpandEach(p, bytes, values, count, out, ExpandQ4Q5<D8, true, true>);
    case QType::kQ4_K:
      return ExpandEach(p, bytes, values, count, out, ExpandQ45_K<D16, false>);
    case QType::kQ5_K:
      return ExpandEach(p, bytes, values, count, out, ExpandQ45_K<D16, true>);
    case QType::kQ6_K: return ExpandEach(p, bytes, values, count, out, ExpandQ6_K<D16>);
    default:  // Q2_K, Q3_K
      with_block_fn(t, [&](auto k) {
        ExpandEach(p, bytes, values, count, out,
                   [](const uint8_t* b, float* o) { decltype(k)::expand(b, o); });
      });
  }
}

constexpr size_t kPrefetchRows = 4;

// A row's dot product with one x row, read straight from the blocks: (x, xsum, w, blocks).
using DotFn = float (*)(const float*, const float*, const uint8_t*, size_t);

// The fused kernel for type t on this target, or null: none for this type and vector width, and
// the matrix-vector path expands each row into an L1 buffer instead (several times slower).
DotFn SelectDot(QType t) {
  if (QuantKernelsFit()) {
    if (t == QType::kQ4_K) return DotQ45_K<false>;
    if (t == QType::kQ5_K) return DotQ45_K<true>;
    if (t == QType::kQ6_K) return DotQ6_K;
    if (t == QType::kQ2_K) return DotQ2_K;
    if (t == QType::kQ3_K) return DotQ3_K;
    if (t == QType::kQ8_0) return DotQ8_0;
  }
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  // Whole 16-lane half-blocks: faster than the 8-lane kernel run on AVX-512's 256-bit halves
  // (measured on an EPYC, one thread, Q5_0: 14-15 against 11.3-11.7 GB/s; AVX2 11-11.5).
  if (t == QType::kQ4_0) return DotQ4Q5x16<false, false>;
  if (t == QType::kQ4_1) return DotQ4Q5x16<false, true>;
  if (t == QType::kQ5_0) return DotQ4Q5x16<true, false>;
  if (t == QType::kQ5_1) return DotQ4Q5x16<true, true>;
#else
  // Vectors of up to 8 lanes; a wider target (other than AVX-512) takes 8 of them.
  using D8 = hn::CappedTag<float, 8>;
  if (t == QType::kQ4_0) return DotQ4Q5<D8, false, false>;
  if (t == QType::kQ4_1) return DotQ4Q5<D8, false, true>;
  if (t == QType::kQ5_0) return DotQ4Q5<D8, true, false>;
  if (t == QType::kQ5_1) return DotQ4Q5<D8, true, true>;
#endif
  return nullptr;
}

bool MatvecFused(QType t) { return SelectDot(t) != nullptr; }

// `rows` weight rows (w at the first, row_bytes apart) against the M rows of x.
void QMatvecBlock(QType t, const float* x, size_t ldx, size_t M, size_t K, const uint8_t* w,
                  size_t row_bytes, size_t rows, const float* bias, float* out, size_t ldo) {
  const QTypeInfo info = qtype_info(t);
  const size_t blocks = K / info.block_values;
  const DotFn dot = SelectDot(t);
  static thread_local hwy::AlignedFreeUniquePtr<float[]> row_buf;
  static thread_local size_t row_cap = 0;
  float* wf = dot ? nullptr : ScratchFloats(row_buf, row_cap, K);
  // Sums of each x row over every 32 values (for the mins and offsets): M * K / 32 floats,
  // formed once per task in a fixed order.
  static thread_local hwy::AlignedFreeUniquePtr<float[]> xsum_buf;
  static thread_local size_t xsum_cap = 0;
  const size_t groups = K / 32;
  float* xsum = ScratchFloats(xsum_buf, xsum_cap, M * groups + 1);
  // Only the types with offsets or mins read them (not Q8_0, the head's type: its tasks are many
  // and short, and summing x in each was a few percent of a decode step).
  const bool needs_xsum = t == QType::kQ4_0 || t == QType::kQ4_1 || t == QType::kQ5_0 ||
                          t == QType::kQ5_1 || t == QType::kQ4_K || t == QType::kQ5_K;
  if (dot && needs_xsum) {
    for (size_t m = 0; m < M; ++m) {
      for (size_t g = 0; g < groups; ++g) {
        const float* xg = x + m * ldx + 32 * g;
        float acc = 0.0f;
        for (size_t i = 0; i < 32; ++i) acc += xg[i];
        xsum[m * groups + g] = acc;
      }
    }
  }
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* wr = w + r * row_bytes;
    // The kernels spend long enough on each row that the hardware prefetchers fall behind the
    // stream; ask for the row kPrefetchRows ahead explicitly (within this task's rows).
    if (r + kPrefetchRows < rows) {
      const uint8_t* ahead = wr + kPrefetchRows * row_bytes;
      for (size_t off = 0; off < blocks * info.block_bytes; off += 64) hwy::Prefetch(ahead + off);
    }
    if (!dot) DequantizeBlocks(t, wr, 0, blocks, wf);
    for (size_t m = 0; m < M; ++m) {
      const float* xm = x + m * ldx;
      const float d = dot ? dot(xm, xsum + m * groups, wr, blocks) : Dot1(xm, wf, K);
      out[m * ldo + r] = bias ? d + bias[r] : d;
    }
  }
}

// One output tile: mb rows of x times nb weight rows, K taken kb_max (a multiple of the block
// size) at a time: dequantize that slice of the nb rows, pack it, run the microkernel over it.
void QGemmTile(QType t, const float* x, size_t ldx, size_t mb, size_t K, const uint8_t* w,
               size_t row_bytes, size_t nb, size_t kb_max, const float* bias, float* out,
               size_t ldo) {
  const QTypeInfo info = qtype_info(t);
  const size_t bv = info.block_values;
  const size_t NR = GemmNR();
  const size_t strips = (nb + NR - 1) / NR, ldc = strips * NR;
  const size_t kb_cap = std::min(kb_max, K);
  const size_t need = mb * ldc + strips * NR * kb_cap + nb * kb_cap;
  static thread_local hwy::AlignedFreeUniquePtr<float[]> scratch;
  static thread_local size_t capacity = 0;
  float* HWY_RESTRICT c = ScratchFloats(scratch, capacity, need);
  float* HWY_RESTRICT panel = c + mb * ldc;  // ldc is a multiple of NR: panel stays aligned
  float* HWY_RESTRICT rows_f = panel + strips * NR * kb_cap;  // nb rows of the K-slice
  std::fill(c, c + mb * ldc, 0.0f);
  for (size_t k0 = 0; k0 < K; k0 += kb_max) {
    const size_t kb = std::min(kb_max, K - k0);
    for (size_t n = 0; n < nb; ++n) {
      DequantizeBlocks(t, w + n * row_bytes, k0 / bv, kb / bv, rows_f + n * kb);
    }
    PackPanel(static_cast<const float*>(rows_f), kb, nb, kb, panel);
    GemmPanel(x + k0, ldx, mb, panel, kb, strips, c, ldc);
  }
  StoreTile(c, ldc, mb, nb, bias, out, ldo);
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(QMatvecBlock);
HWY_EXPORT(QGemmTile);
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
  if (M <= kMatvecMaxRows) {
    for_each_matvec_block(N, row_bytes, [&](int64_t n0, int64_t nb) {
      HWY_DYNAMIC_DISPATCH(QMatvecBlock)(t, x, ldx, M, K, w + n0 * row_bytes, row_bytes, nb,
                                         bias ? bias + n0 : nullptr, out + n0, ldo);
    });
    return;
  }
  for_each_gemm_tile(M, N, [&](int64_t m0, int64_t mb, int64_t n0, int64_t nb) {
    HWY_DYNAMIC_DISPATCH(QGemmTile)(t, x + m0 * ldx, ldx, mb, K, w + n0 * row_bytes, row_bytes,
                                    nb, kK, bias ? bias + n0 : nullptr, out + m0 * ldo + n0, ldo);
  });
}

}  // namespace gemmacpp::cpu
#endif
