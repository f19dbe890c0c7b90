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

// sums[i] = GetLane(SumOfLanes(df, v[i])) for four vectors, bitwise. On AVX-512 Highway's
// SumOfLanes is _mm512_reduce_add_ps, whose tree (GCC's avx512fintrin.h) adds the 256-bit halves,
// then the 128-bit halves of that, then lanes j and j + 2, then lanes 0 and 1; here the four
// vectors run that same tree together, two or four of them per shuffle and add (IEEE addition is
// commutative, so only the pairing matters): 8 shuffles and 5 adds instead of 4 x 7 operations.
// Other targets reduce each vector as SumOfLanes does (the same transposition of Highway's 8-lane
// tree on AVX2 measured 0.97x, contended: there K / 8 FMAs per pair dwarf the reduction).
template <class DF>
HWY_INLINE void SumOfLanes4(DF df, const hn::Vec<DF>* v, float* HWY_RESTRICT sums) {
#if (HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL) && HWY_COMPILER_GCC_ACTUAL
  if constexpr (hn::MaxLanes(DF()) == 16) {
    // [A.lo + A.hi, B.lo + B.hi] and the same for C, D: the 256-bit halves.
    const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(v[0].raw, v[1].raw, _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_shuffle_f32x4(v[0].raw, v[1].raw, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(v[2].raw, v[3].raw, _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_shuffle_f32x4(v[2].raw, v[3].raw, _MM_SHUFFLE(3, 2, 3, 2)));
    // One 128-bit block per vector: the sums of the 128-bit halves of each 256-bit sum.
    const __m512 q = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));
    // Lanes j + (j ^ 2), then lanes 0 + 1 of each block.
    const __m512 p = _mm512_add_ps(q, _mm512_permute_ps(q, _MM_SHUFFLE(1, 0, 3, 2)));
    const __m512 s = _mm512_add_ps(p, _mm512_permute_ps(p, _MM_SHUFFLE(2, 3, 0, 1)));
    HWY_ALIGN float lanes[16];
    _mm512_store_ps(lanes, s);
    for (size_t i = 0; i < 4; ++i) sums[i] = lanes[4 * i];
    return;
  }
#endif
  for (size_t i = 0; i < 4; ++i) sums[i] = hn::GetLane(hn::SumOfLanes(df, v[i]));
}

// Stores GetLane(SumOfLanes(df, acc[c])) for c < min(cols, C) at out[c]: four at a time.
template <size_t C, class DF>
HWY_INLINE void StoreSumsOfLanes(DF df, const hn::Vec<DF>* acc, size_t cols, float* HWY_RESTRICT out) {
  size_t c = 0;
  for (; c + 4 <= C && c < cols; c += 4) {
    float sums[4];
    SumOfLanes4(df, acc + c, sums);
    for (size_t i = 0; i < 4 && c + i < cols; ++i) out[c + i] = sums[i];
  }
  for (; c < cols && c < C; ++c) out[c] = hn::GetLane(hn::SumOfLanes(df, acc[c]));
}

// out[r * ldo + c] = sum_k x_r[k] * w_c[k] for R rows of x (ldx apart) and the first `cols` of C
// weight rows (ldw apart; a short group repeats its last row, whose duplicate results are not
// stored). Every (row, weight row) pair has one accumulator vector, lane l summing k = l mod Lanes
// in increasing k (the last, partial vector zero-filled), reduced by SumOfLanes (on AVX-512 four
// pairs at a time, SumOfLanes4, with the same additions): the same
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
  for (size_t r = 0; r < R; ++r) StoreSumsOfLanes<C>(df, a[r], cols, out + r * ldo);
}

// ---- blocked GEMM ---------------------------------------------------------------------------------

// Microkernel shape: kGemmMR rows of x times one strip of 2 vectors (NR = 2 * Lanes) of outputs.
// 6 x 2 accumulators + 2 weight vectors + 1 broadcast = 15 of AVX2's 16 registers.
constexpr size_t kGemmMR = 6;

// Strip width in floats: two vectors.
HWY_INLINE size_t GemmNR() { return 2 * hn::Lanes(hn::ScalableTag<float>()); }

// Packs a kb-long slice of a weight stored k-major (w[k * ldw + n], the W of x @ W, e.g. a sparse
// autoencoder's W_enc [d_in, d_sae]) into strips of NR outputs, each strip laid out [kb][NR] so
// that the microkernel reads one contiguous NR-wide row per k: w points at row k0, column 0 of the
// slice; each k reads ncols contiguous values. Columns ncols..strips*NR-1 of the last strip are
// zero; panel (aligned) holds ceil(ncols / NR) * kb * NR floats.
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
