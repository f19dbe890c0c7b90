// Per-target inner kernels of linear (x @ weight.T): a multi-row dot product for the
// matrix-vector path, and the packing plus register-blocked microkernel of the blocked GEMM.
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

// ---- matrix-vector ------------------------------------------------------------------------------

// dot[i] = sum_k x[k] * w_i[k] for four weight rows at once: the x vector is loaded once per four
// rows, and two k-steps are in flight (8 independent accumulators) to hide the FMA latency.
// Vectors are kept in named variables, not arrays, so that this also builds for sizeless targets.
template <class T>
HWY_INLINE void Dot4(const float* HWY_RESTRICT x, const T* HWY_RESTRICT w0,
                     const T* HWY_RESTRICT w1, const T* HWY_RESTRICT w2,
                     const T* HWY_RESTRICT w3, size_t K, float* HWY_RESTRICT dot) {
  const hn::ScalableTag<float> df;
  const size_t L = hn::Lanes(df);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  auto b0 = hn::Zero(df), b1 = hn::Zero(df), b2 = hn::Zero(df), b3 = hn::Zero(df);
  size_t k = 0;
  for (; k + 2 * L <= K; k += 2 * L) {
    const auto xa = hn::LoadU(df, x + k);
    const auto xb = hn::LoadU(df, x + k + L);
    a0 = hn::MulAdd(LoadF32(df, w0 + k), xa, a0);
    a1 = hn::MulAdd(LoadF32(df, w1 + k), xa, a1);
    a2 = hn::MulAdd(LoadF32(df, w2 + k), xa, a2);
    a3 = hn::MulAdd(LoadF32(df, w3 + k), xa, a3);
    b0 = hn::MulAdd(LoadF32(df, w0 + k + L), xb, b0);
    b1 = hn::MulAdd(LoadF32(df, w1 + k + L), xb, b1);
    b2 = hn::MulAdd(LoadF32(df, w2 + k + L), xb, b2);
    b3 = hn::MulAdd(LoadF32(df, w3 + k + L), xb, b3);
  }
  if (k + L <= K) {
    const auto xa = hn::LoadU(df, x + k);
    a0 = hn::MulAdd(LoadF32(df, w0 + k), xa, a0);
    a1 = hn::MulAdd(LoadF32(df, w1 + k), xa, a1);
    a2 = hn::MulAdd(LoadF32(df, w2 + k), xa, a2);
    a3 = hn::MulAdd(LoadF32(df, w3 + k), xa, a3);
    k += L;
  }
  if (k < K) {  // zero-filled tail: the padding lanes add exact zeros
    const size_t n = K - k;
    const auto xt = LoadF32Partial(df, x + k, n);
    b0 = hn::MulAdd(LoadF32Partial(df, w0 + k, n), xt, b0);
    b1 = hn::MulAdd(LoadF32Partial(df, w1 + k, n), xt, b1);
    b2 = hn::MulAdd(LoadF32Partial(df, w2 + k, n), xt, b2);
    b3 = hn::MulAdd(LoadF32Partial(df, w3 + k, n), xt, b3);
  }
  dot[0] = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, b0)));
  dot[1] = hn::GetLane(hn::SumOfLanes(df, hn::Add(a1, b1)));
  dot[2] = hn::GetLane(hn::SumOfLanes(df, hn::Add(a2, b2)));
  dot[3] = hn::GetLane(hn::SumOfLanes(df, hn::Add(a3, b3)));
}

// sum_k x[k] * w[k] for one weight row: four k-steps (independent accumulators) in flight.
template <class T>
HWY_INLINE float Dot1(const float* HWY_RESTRICT x, const T* HWY_RESTRICT w, size_t K) {
  const hn::ScalableTag<float> df;
  const size_t L = hn::Lanes(df);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  size_t k = 0;
  for (; k + 4 * L <= K; k += 4 * L) {
    a0 = hn::MulAdd(LoadF32(df, w + k), hn::LoadU(df, x + k), a0);
    a1 = hn::MulAdd(LoadF32(df, w + k + L), hn::LoadU(df, x + k + L), a1);
    a2 = hn::MulAdd(LoadF32(df, w + k + 2 * L), hn::LoadU(df, x + k + 2 * L), a2);
    a3 = hn::MulAdd(LoadF32(df, w + k + 3 * L), hn::LoadU(df, x + k + 3 * L), a3);
  }
  for (; k + L <= K; k += L) a0 = hn::MulAdd(LoadF32(df, w + k), hn::LoadU(df, x + k), a0);
  if (k < K) a1 = hn::MulAdd(LoadF32Partial(df, w + k, K - k), LoadF32Partial(df, x + k, K - k), a1);
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
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
