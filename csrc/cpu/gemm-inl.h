// Per-target inner kernels of x @ weight.T: the tiles of row-by-row dot products that linear runs
// for any number of rows, and the packing plus register-blocked microkernel of a blocked GEMM
// (sae.cc's encoder).
// Weights are float32, float16 or bfloat16 and are promoted to float32 as they are loaded; all
// arithmetic is float32 FMA. Every kernel accumulates over k in one fixed order that depends only
// on K, never on how the caller splits the output into tasks.
// Include after hwy/highway.h and simd-inl.h inside a foreach_target translation unit.

#if defined(GEMMACPP_CPU_GEMM_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef GEMMACPP_CPU_GEMM_INL_H_
#undef GEMMACPP_CPU_GEMM_INL_H_
#else
#define GEMMACPP_CPU_GEMM_INL_H_
#endif

#include <cstddef>

#include "hwy/highway.h"
#include "csrc/cpu/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---- row-by-row dot products (linear's only path) ----------------------------------------------

// out[r * ldo + c] = sum_k x_r[k] * w_c[k] for R rows of x (ldx apart) and the first `cols` of C
// weight rows (ldw apart; a short group repeats its last row, whose duplicate results are not
// stored). Every (row, weight row) pair has one accumulator vector, lane l summing k = l mod Lanes
// in increasing k (the last, partial vector zero-filled), reduced by SumOfLanes: the same
// operations for any R, C and position in the tile, so a row's result does not depend on the
// other rows of x, on M, or on how the caller groups weight rows. An R x C tile loads R + C
// vectors per R * C FMAs; R * C chains in flight hide the FMA latency.
// Vectors are kept in arrays (no sizeless targets are compiled; see CMakeLists.txt).
template <size_t R, size_t C, class T>
HWY_INLINE void DotTile(const float* HWY_RESTRICT x, size_t ldx, const T* HWY_RESTRICT w,
                        size_t ldw, size_t cols, size_t K, float* HWY_RESTRICT out, size_t ldo) {
  const hn::ScalableTag<float> df;
  using V = hn::Vec<decltype(df)>;
  const size_t L = hn::Lanes(df);
  const T* wc[C];
  for (size_t c = 0; c < C; ++c) wc[c] = w + (c < cols ? c : cols - 1) * ldw;
  V a[R][C];
  for (size_t r = 0; r < R; ++r) {
    for (size_t c = 0; c < C; ++c) a[r][c] = hn::Zero(df);
  }
  size_t k = 0;
  for (; k + L <= K; k += L) {
    V xv[R];
    for (size_t r = 0; r < R; ++r) xv[r] = hn::LoadU(df, x + r * ldx + k);
    for (size_t c = 0; c < C; ++c) {
      const V wv = LoadF32(df, wc[c] + k);
      for (size_t r = 0; r < R; ++r) a[r][c] = hn::MulAdd(wv, xv[r], a[r][c]);
    }
  }
  if (k < K) {  // zero-filled tail: the padding lanes add exact zeros
    const size_t n = K - k;
    V xv[R];
    for (size_t r = 0; r < R; ++r) xv[r] = LoadF32Partial(df, x + r * ldx + k, n);
    for (size_t c = 0; c < C; ++c) {
      const V wv = LoadF32Partial(df, wc[c] + k, n);
      for (size_t r = 0; r < R; ++r) a[r][c] = hn::MulAdd(wv, xv[r], a[r][c]);
    }
  }
  for (size_t r = 0; r < R; ++r) {
    for (size_t c = 0; c < cols && c < C; ++c) {
      out[r * ldo + c] = hn::GetLane(hn::SumOfLanes(df, a[r][c]));
    }
  }
}

// ---- blocked GEMM ---------------------------------------------------------------------------------

// Microkernel shape: kGemmMR rows of x times one strip of 2 vectors (NR = 2 * Lanes) of outputs.
// 6 x 2 accumulators + 2 weight vectors + 1 broadcast = 15 of AVX2's 16 registers.
constexpr size_t kGemmMR = 6;

// Strip width in floats: two vectors.
HWY_INLINE size_t GemmNR() { return 2 * hn::Lanes(hn::ScalableTag<float>()); }

#if HWY_TARGET != HWY_SCALAR  // (no InterleaveLower there; it never uses the transpose)
// Writes the transpose of an 8 x 8 block: out + i * stride receives element i of rows r0..r7.
// Only for 8-lane float vectors (AVX2, or a CappedTag on wider targets): unpack 32-bit pairs,
// then 64-bit pairs within 128-bit blocks, then swap 128-bit halves.
template <class DF, class V>
HWY_INLINE void Transpose8x8Store(DF df, V r0, V r1, V r2, V r3, V r4, V r5, V r6, V r7,
                                  float* HWY_RESTRICT out, size_t stride) {
  const hn::Repartition<double, DF> dd;
  const auto t0 = hn::BitCast(dd, hn::InterleaveLower(df, r0, r1));  // r0[0] r1[0] r0[1] r1[1]
  const auto t1 = hn::BitCast(dd, hn::InterleaveUpper(df, r0, r1));  // r0[2] r1[2] r0[3] r1[3]
  const auto t2 = hn::BitCast(dd, hn::InterleaveLower(df, r2, r3));
  const auto t3 = hn::BitCast(dd, hn::InterleaveUpper(df, r2, r3));
  const auto t4 = hn::BitCast(dd, hn::InterleaveLower(df, r4, r5));
  const auto t5 = hn::BitCast(dd, hn::InterleaveUpper(df, r4, r5));
  const auto t6 = hn::BitCast(dd, hn::InterleaveLower(df, r6, r7));
  const auto t7 = hn::BitCast(dd, hn::InterleaveUpper(df, r6, r7));
  const V u0 = hn::BitCast(df, hn::InterleaveLower(dd, t0, t2));  // rows 0-3 of col 0 | col 4
  const V u1 = hn::BitCast(df, hn::InterleaveUpper(dd, t0, t2));  // col 1 | col 5
  const V u2 = hn::BitCast(df, hn::InterleaveLower(dd, t1, t3));  // col 2 | col 6
  const V u3 = hn::BitCast(df, hn::InterleaveUpper(dd, t1, t3));  // col 3 | col 7
  const V u4 = hn::BitCast(df, hn::InterleaveLower(dd, t4, t6));  // rows 4-7 likewise
  const V u5 = hn::BitCast(df, hn::InterleaveUpper(dd, t4, t6));
  const V u6 = hn::BitCast(df, hn::InterleaveLower(dd, t5, t7));
  const V u7 = hn::BitCast(df, hn::InterleaveUpper(dd, t5, t7));
  hn::Store(hn::ConcatLowerLower(df, u4, u0), df, out + 0 * stride);
  hn::Store(hn::ConcatLowerLower(df, u5, u1), df, out + 1 * stride);
  hn::Store(hn::ConcatLowerLower(df, u6, u2), df, out + 2 * stride);
  hn::Store(hn::ConcatLowerLower(df, u7, u3), df, out + 3 * stride);
  hn::Store(hn::ConcatUpperUpper(df, u4, u0), df, out + 4 * stride);
  hn::Store(hn::ConcatUpperUpper(df, u5, u1), df, out + 5 * stride);
  hn::Store(hn::ConcatUpperUpper(df, u6, u2), df, out + 6 * stride);
  hn::Store(hn::ConcatUpperUpper(df, u7, u3), df, out + 7 * stride);
}
#endif

// Packs columns [0, ncols) of a kb-long slice of weight rows into strips of NR outputs, each strip
// laid out [kb][NR] (k-major) so that the microkernel reads one contiguous NR-wide row per k.
// w points at weight row 0, column k0; rows are ldw elements apart. Columns ncols..strips*NR-1 of
// the last strip are zero. panel (aligned) holds ceil(ncols / NR) * kb * NR floats.
template <class T>
HWY_INLINE void PackPanel(const T* HWY_RESTRICT w, size_t ldw, size_t ncols, size_t kb,
                          float* HWY_RESTRICT panel) {
  const hn::ScalableTag<float> df;
  const size_t L = hn::Lanes(df), NR = 2 * L;
  HWY_ALIGN float tmp[hn::MaxLanes(df)];
  const size_t strips = (ncols + NR - 1) / NR;
  for (size_t s = 0; s < strips; ++s) {
    float* HWY_RESTRICT dst = panel + s * kb * NR;
    size_t k_done = 0;
#if HWY_TARGET != HWY_SCALAR
    if constexpr (hn::MaxLanes(df) >= 8) {
      // 8 columns x 8 k at a time through a register transpose of 8-lane vectors (columns past
      // ncols are zero); on 16-lane targets too, where the scatter below made packing the
      // bottleneck of small-M products (one thread on an EPYC, M = 8, K = 1024: AVX-512 47
      // GFLOP/s for float32 weights against AVX2's 70; with this, 100).
      const hn::CappedTag<float, 8> d8;
      const size_t k_vec = kb / 8 * 8;
      for (size_t j0 = 0; j0 < NR; j0 += 8) {
        const size_t c0 = s * NR + j0;
        const auto row = [&](size_t i, size_t k) {
          return c0 + i < ncols ? LoadF32(d8, w + (c0 + i) * ldw + k) : hn::Zero(d8);
        };
        for (size_t k = 0; k < k_vec; k += 8) {
          Transpose8x8Store(d8, row(0, k), row(1, k), row(2, k), row(3, k), row(4, k), row(5, k),
                            row(6, k), row(7, k), dst + k * NR + j0, NR);
        }
      }
      k_done = k_vec;
    }
#endif
    if (k_done == kb) continue;
    // Any other vector width, and the k tail: convert a vector, then scatter it down the column.
    for (size_t j = 0; j < NR; ++j) {
      const size_t col = s * NR + j;
      if (col >= ncols) {
        for (size_t k = k_done; k < kb; ++k) dst[k * NR + j] = 0.0f;
        continue;
      }
      const T* HWY_RESTRICT row = w + col * ldw;
      size_t k = k_done;
      for (; k + L <= kb; k += L) {
        hn::Store(LoadF32(df, row + k), df, tmp);
        for (size_t i = 0; i < L; ++i) dst[(k + i) * NR + j] = tmp[i];
      }
      if (k < kb) {
        hn::Store(LoadF32Partial(df, row + k, kb - k), df, tmp);
        for (size_t i = 0; k + i < kb; ++i) dst[(k + i) * NR + j] = tmp[i];
      }
    }
  }
}

// The same panel from a weight stored k-major (w[k * ldw + n], the W of x @ W, e.g. a sparse
// autoencoder's W_enc [d_in, d_sae]): w points at row k0, column 0 of the slice; each k reads
// ncols contiguous values. Columns ncols..strips*NR-1 of the last strip are zero.
template <class T>
HWY_INLINE void PackPanelKMajor(const T* HWY_RESTRICT w, size_t ldw, size_t ncols, size_t kb,
                                float* HWY_RESTRICT panel) {
  const hn::ScalableTag<float> df;
  const size_t L = hn::Lanes(df), NR = 2 * L;
  const size_t strips = (ncols + NR - 1) / NR;
  for (size_t k = 0; k < kb; ++k) {
    const T* HWY_RESTRICT row = w + k * ldw;
    for (size_t s = 0; s < strips; ++s) {
      float* HWY_RESTRICT dst = panel + s * kb * NR + k * NR;
      for (size_t j = 0; j < NR; j += L) {
        const size_t c = s * NR + j;
        if (c + L <= ncols) {
          hn::Store(LoadF32(df, row + c), df, dst + j);
        } else if (c < ncols) {
          hn::Store(LoadF32Partial(df, row + c, ncols - c), df, dst + j);
        } else {
          hn::Store(hn::Zero(df), df, dst + j);
        }
      }
    }
  }
}

// c[r][0..NR) += sum_{k < kb} x[r * ldx + k] * panel[k * NR + j] for rows r < R (R <= kGemmMR),
// one strip. c rows are ldc floats apart and NR-aligned; panel is aligned. The k loop is the only
// reduction, in increasing k, so each output's accumulation order is fixed by K alone.
template <size_t R>
HWY_INLINE void GemmMicroTile(const float* HWY_RESTRICT x, size_t ldx,
                              const float* HWY_RESTRICT panel, size_t kb, float* HWY_RESTRICT c,
                              size_t ldc) {
  static_assert(R >= 1 && R <= kGemmMR, "row count of the microkernel");
  const hn::ScalableTag<float> df;
  const size_t L = hn::Lanes(df), NR = 2 * L;
  using V = hn::Vec<decltype(df)>;
#define GC_GEMM_ROW_LOAD(i)                                                 \
  V c##i##0 = hn::Zero(df), c##i##1 = hn::Zero(df);                         \
  if constexpr (R > i) {                                                    \
    c##i##0 = hn::Load(df, c + i * ldc);                                    \
    c##i##1 = hn::Load(df, c + i * ldc + L);                                \
  }
  GC_GEMM_ROW_LOAD(0) GC_GEMM_ROW_LOAD(1) GC_GEMM_ROW_LOAD(2)
  GC_GEMM_ROW_LOAD(3) GC_GEMM_ROW_LOAD(4) GC_GEMM_ROW_LOAD(5)
#undef GC_GEMM_ROW_LOAD
  const float* HWY_RESTRICT x0 = x;
  const float* HWY_RESTRICT x1 = x + (R > 1 ? 1 : 0) * ldx;
  const float* HWY_RESTRICT x2 = x + (R > 2 ? 2 : 0) * ldx;
  const float* HWY_RESTRICT x3 = x + (R > 3 ? 3 : 0) * ldx;
  const float* HWY_RESTRICT x4 = x + (R > 4 ? 4 : 0) * ldx;
  const float* HWY_RESTRICT x5 = x + (R > 5 ? 5 : 0) * ldx;
  for (size_t k = 0; k < kb; ++k) {
    const V w0 = hn::Load(df, panel + k * NR);
    const V w1 = hn::Load(df, panel + k * NR + L);
#define GC_GEMM_ROW_FMA(i)                                                  \
    if constexpr (R > i) {                                                  \
      const V xb = hn::Set(df, x##i[k]);                                    \
      c##i##0 = hn::MulAdd(xb, w0, c##i##0);                                \
      c##i##1 = hn::MulAdd(xb, w1, c##i##1);                                \
    }
    GC_GEMM_ROW_FMA(0) GC_GEMM_ROW_FMA(1) GC_GEMM_ROW_FMA(2)
    GC_GEMM_ROW_FMA(3) GC_GEMM_ROW_FMA(4) GC_GEMM_ROW_FMA(5)
#undef GC_GEMM_ROW_FMA
  }
#define GC_GEMM_ROW_STORE(i)                                                \
  if constexpr (R > i) {                                                    \
    hn::Store(c##i##0, df, c + i * ldc);                                    \
    hn::Store(c##i##1, df, c + i * ldc + L);                                \
  }
  GC_GEMM_ROW_STORE(0) GC_GEMM_ROW_STORE(1) GC_GEMM_ROW_STORE(2)
  GC_GEMM_ROW_STORE(3) GC_GEMM_ROW_STORE(4) GC_GEMM_ROW_STORE(5)
#undef GC_GEMM_ROW_STORE
}

// The microkernel for a run-time row count 1..kGemmMR (the last row group of a tile).
HWY_INLINE void GemmMicroTileRows(size_t rows, const float* x, size_t ldx, const float* panel,
                                  size_t kb, float* c, size_t ldc) {
  switch (rows) {
    case 1: return GemmMicroTile<1>(x, ldx, panel, kb, c, ldc);
    case 2: return GemmMicroTile<2>(x, ldx, panel, kb, c, ldc);
    case 3: return GemmMicroTile<3>(x, ldx, panel, kb, c, ldc);
    case 4: return GemmMicroTile<4>(x, ldx, panel, kb, c, ldc);
    case 5: return GemmMicroTile<5>(x, ldx, panel, kb, c, ldc);
    default: return GemmMicroTile<6>(x, ldx, panel, kb, c, ldc);
  }
}

// c[mb x strips*NR] += x[mb rows, kb columns] * panel (a packed K slice of every strip): each
// strip's panel (kb x NR floats) stays in L1 while every row group runs over it.
HWY_INLINE void GemmPanel(const float* x, size_t ldx, size_t mb, const float* panel, size_t kb,
                          size_t strips, float* c, size_t ldc) {
  const size_t NR = GemmNR();
  for (size_t s = 0; s < strips; ++s) {
    for (size_t r0 = 0; r0 < mb; r0 += kGemmMR) {
      GemmMicroTileRows(std::min(kGemmMR, mb - r0), x + r0 * ldx, ldx, panel + s * kb * NR, kb,
                        c + r0 * ldc + s * NR, ldc);
    }
  }
}

// out rows = c rows (+ bias): the tile's epilogue.
HWY_INLINE void StoreTile(const float* c, size_t ldc, size_t mb, size_t nb, const float* bias,
                          float* out, size_t ldo) {
  for (size_t r = 0; r < mb; ++r) {
    const float* cr = c + r * ldc;
    float* o = out + r * ldo;
    if (bias) {
      for (size_t n = 0; n < nb; ++n) o[n] = cr[n] + bias[n];
    } else {
      std::copy(cr, cr + nb, o);
    }
  }
}

// Per-thread scratch of at least n floats, grown on demand and reused.
HWY_INLINE float* ScratchFloats(hwy::AlignedFreeUniquePtr<float[]>& buf, size_t& cap, size_t n) {
  if (cap < n) {
    buf = hwy::AllocateAligned<float>(n);
    cap = n;
  }
  return buf.get();
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
