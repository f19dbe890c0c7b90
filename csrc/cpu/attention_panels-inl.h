// A K panel of the CPU attention kernel (layout at attention.cc's PanelWidth: W keys of the tile
// side by side, [D][W], keys past the tile's end zero) built straight from the cache's key rows,
// N keys x N head dims at a time transposed in registers. Decode builds each panel just before
// its scores, into an L1-sized buffer, and only the panels that some row sees; the panel holds
// the same floats as the packed tile, so the scores are the same bits (batch invariance).
// Include after hwy/highway.h and simd-inl.h inside a foreach_target translation unit.

#if defined(GEMMACPP_CPU_ATTENTION_PANELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef GEMMACPP_CPU_ATTENTION_PANELS_INL_H_
#undef GEMMACPP_CPU_ATTENTION_PANELS_INL_H_
#else
#define GEMMACPP_CPU_ATTENTION_PANELS_INL_H_
#endif

#include <algorithm>
#include <cstdint>
#include <vector>

#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128

// Transposes the 4 x 4 blocks of rows r[0..4) within each 128-bit block: afterwards block k of
// r[e] holds element 4k + e of the four rows, in row order.
template <class DF>
HWY_INLINE void Transpose4InBlocks(DF df, hn::Vec<DF>* r) {
  const hn::Repartition<double, DF> dd;
  const auto t0 = hn::BitCast(dd, hn::InterleaveLower(df, r[0], r[1]));
  const auto t1 = hn::BitCast(dd, hn::InterleaveUpper(df, r[0], r[1]));
  const auto t2 = hn::BitCast(dd, hn::InterleaveLower(df, r[2], r[3]));
  const auto t3 = hn::BitCast(dd, hn::InterleaveUpper(df, r[2], r[3]));
  r[0] = hn::BitCast(df, hn::InterleaveLower(dd, t0, t2));
  r[1] = hn::BitCast(df, hn::InterleaveUpper(dd, t0, t2));
  r[2] = hn::BitCast(df, hn::InterleaveLower(dd, t1, t3));
  r[3] = hn::BitCast(df, hn::InterleaveUpper(dd, t1, t3));
}

// r[x][i] = old r[i][x] for the N = Lanes(df) vectors r[0..N) (N = 4, 8 or 16).
template <class DF>
HWY_INLINE void TransposeSquare(DF df, hn::Vec<DF>* r) {
  constexpr size_t N = hn::MaxLanes(DF());
  static_assert(N == 4 || N == 8 || N == 16, "x86 vectors of 4, 8 or 16 floats");
  for (size_t g = 0; g < N / 4; ++g) Transpose4InBlocks(df, r + 4 * g);
  if constexpr (N == 8) {
    // Rows 0-3 in r[0..4), rows 4-7 in r[4..8): dim e is the low halves, dim 4 + e the high.
    for (size_t e = 0; e < 4; ++e) {
      const auto lo = r[e], hi = r[4 + e];
      r[e] = hn::ConcatLowerLower(df, hi, lo);
      r[4 + e] = hn::ConcatUpperUpper(df, hi, lo);
    }
  }
#if HWY_TARGET <= HWY_AVX3
  if constexpr (N == 16) {
    // Group g (rows 4g..4g+3) in r[4g..4g+4): block k of r[4g + e] is dim 4k + e. Gather block k
    // of the four groups, in group order, for dim 4k + e.
    for (size_t e = 0; e < 4; ++e) {
      const __m512 g0 = r[e].raw, g1 = r[4 + e].raw, g2 = r[8 + e].raw, g3 = r[12 + e].raw;
      const __m512 lo01 = _mm512_shuffle_f32x4(g0, g1, 0x44);  // g0.b0 g0.b1 g1.b0 g1.b1
      const __m512 hi01 = _mm512_shuffle_f32x4(g0, g1, 0xEE);  // g0.b2 g0.b3 g1.b2 g1.b3
      const __m512 lo23 = _mm512_shuffle_f32x4(g2, g3, 0x44);
      const __m512 hi23 = _mm512_shuffle_f32x4(g2, g3, 0xEE);
      r[e].raw = _mm512_shuffle_f32x4(lo01, lo23, 0x88);       // block 0 of each group
      r[4 + e].raw = _mm512_shuffle_f32x4(lo01, lo23, 0xDD);   // block 1
      r[8 + e].raw = _mm512_shuffle_f32x4(hi01, hi23, 0x88);   // block 2
      r[12 + e].raw = _mm512_shuffle_f32x4(hi01, hi23, 0xDD);  // block 3
    }
  }
#endif
}
#endif

// panel[d * W + jj] = key (j0 + jj)'s element d as float32, for d < D and jj < W; zero for keys
// at or past tk. Key j's row starts at k + j * stride.
template <class T>
void PackKeyPanel(const T* HWY_RESTRICT k, int64_t stride, size_t j0, size_t tk, size_t D,
                  size_t W, float* HWY_RESTRICT panel) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
  constexpr size_t kN = hn::MaxLanes(decltype(df)());
  if (N == kN && W % kN == 0) {
    using V = hn::Vec<decltype(df)>;
    static thread_local std::vector<T> zeros;  // the "row" of keys past tk (all-zero bits: +0)
    if (zeros.size() < D) zeros.assign(D, T{});
    const size_t full_d = D / kN * kN;
    for (size_t c = 0; c < W; c += kN) {
      const T* rows[kN];
      for (size_t i = 0; i < kN; ++i)
        rows[i] = j0 + c + i < tk ? k + int64_t(j0 + c + i) * stride : zeros.data();
      // The cache rows come from L3 or memory (a decode step's weights have evicted them), one
      // stream per key, which the hardware prefetchers serve badly: fetch the same dims of the
      // next kN keys (this panel's next group, or the next panel's first) while transposing.
      const T* next = k + int64_t(j0 + c + kN) * stride;
      // Straight-line loads, transposes and stores (no branch inside), so that the kN vectors
      // stay in registers.
      for (size_t d = 0; d < full_d; d += kN) {
        V r[kN];
#pragma GCC unroll 16
        for (size_t i = 0; i < kN; ++i) r[i] = LoadF32(df, rows[i] + d);
#pragma GCC unroll 16
        for (size_t i = 0; i < kN; ++i) hwy::Prefetch(next + int64_t(i) * stride + d);  // a hint
        TransposeSquare(df, r);
#pragma GCC unroll 16
        for (size_t x = 0; x < kN; ++x) hn::StoreU(r[x], df, panel + (d + x) * W + c);
      }
      if (full_d < D) {  // the last dims: never read past a row
        const size_t n = D - full_d;
        V r[kN];
        for (size_t i = 0; i < kN; ++i) r[i] = LoadF32Partial(df, rows[i] + full_d, n);
        TransposeSquare(df, r);
        for (size_t x = 0; x < n; ++x) hn::StoreU(r[x], df, panel + (full_d + x) * W + c);
      }
    }
    return;
  }
#endif
  static thread_local std::vector<float> row_buf;
  if (row_buf.size() < D + N) row_buf.resize(D + N);
  float* row = row_buf.data();
  for (size_t jj = 0; jj < W; ++jj) {
    if (j0 + jj < tk) {
      const T* src = k + int64_t(j0 + jj) * stride;
      for (size_t d = 0; d < D; d += N) {
        const auto v = d + N <= D ? LoadF32(df, src + d) : LoadF32Partial(df, src + d, D - d);
        hn::StoreU(v, df, row + d);
      }
      for (size_t d = 0; d < D; ++d) panel[d * W + jj] = row[d];
    } else {
      for (size_t d = 0; d < D; ++d) panel[d * W + jj] = 0.0f;
    }
  }
}

// The most rows ScoreKeyRows takes (0: none on this target): its accumulators and the kN
// transposed vectors must fit the registers (32 with AVX-512, else 16).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int kScoreKeyRowsMax = 8;
#elif HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
constexpr int kScoreKeyRowsMax = 6;
#else
constexpr int kScoreKeyRowsMax = 0;
#endif

#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
// s[m][0..kN) = the scores of MR rows (q, ldq apart) against the kN keys rows[0..kN), each the
// FMA chain over d of ScoreBlock on a panel of these keys (q[m][d] * key[d] added to a sum from
// zero, d in order): the same bits, without storing the transposed keys and loading them back.
// vrows (or null): the keys' value rows, prefetched a line per row and block of dims, for the
// P V that follows (spread over the scores: a burst of a panel's value lines stalls on the
// memory system's queue).
template <int MR, class T>
HWY_INLINE void ScoreKeyGroup(const float* HWY_RESTRICT q, size_t ldq, const T* const* rows,
                              const T* next, int64_t stride, const float* vrows,
                              int64_t v_stride, size_t D, float* HWY_RESTRICT s, size_t lds) {
  const hn::ScalableTag<float> df;
  using V = hn::Vec<decltype(df)>;
  constexpr size_t kN = hn::MaxLanes(decltype(df)());
  V acc[MR];
  for (int m = 0; m < MR; ++m) acc[m] = hn::Zero(df);
  const size_t full_d = D / kN * kN;
  for (size_t d = 0; d < full_d; d += kN) {
    V r[kN];
#pragma GCC unroll 16
    for (size_t i = 0; i < kN; ++i) r[i] = LoadF32(df, rows[i] + d);
#pragma GCC unroll 16
    for (size_t i = 0; i < kN; ++i) hwy::Prefetch(next + int64_t(i) * stride + d);  // as below
    if (vrows) {
#pragma GCC unroll 16
      for (size_t i = 0; i < kN; ++i) hwy::Prefetch(vrows + int64_t(i) * v_stride + d);
    }
    TransposeSquare(df, r);
#pragma GCC unroll 16
    for (size_t x = 0; x < kN; ++x) {
      for (int m = 0; m < MR; ++m) acc[m] = hn::MulAdd(hn::Set(df, q[m * ldq + d + x]), r[x], acc[m]);
    }
  }
  if (full_d < D) {
    const size_t n = D - full_d;
    V r[kN];
    for (size_t i = 0; i < kN; ++i) r[i] = LoadF32Partial(df, rows[i] + full_d, n);
    TransposeSquare(df, r);
    for (size_t x = 0; x < n; ++x) {
      for (int m = 0; m < MR; ++m) {
        acc[m] = hn::MulAdd(hn::Set(df, q[m * ldq + full_d + x]), r[x], acc[m]);
      }
    }
  }
  for (int m = 0; m < MR; ++m) hn::StoreU(acc[m], df, s + m * lds);
}

template <int MR, class T>
HWY_INLINE void ScoreKeyPanelRows(const T* k, int64_t stride, const float* v, int64_t v_stride,
                                  size_t j0, size_t tk, size_t D, size_t W, const float* q,
                                  size_t ldq, float* s, size_t lds) {
  constexpr size_t kN = hn::MaxLanes(hn::ScalableTag<float>());
  static thread_local std::vector<T> zeros;  // the "row" of keys past tk (all-zero bits: +0)
  if (zeros.size() < D) zeros.assign(D, T{});
  for (size_t c = 0; c < W; c += kN) {
    const T* rows[kN];
    for (size_t i = 0; i < kN; ++i)
      rows[i] = j0 + c + i < tk ? k + int64_t(j0 + c + i) * stride : zeros.data();
    ScoreKeyGroup<MR>(q, ldq, rows, k + int64_t(j0 + c + kN) * stride, stride,
                      v ? v + int64_t(j0 + c) * v_stride : nullptr, v_stride, D, s + c, lds);
  }
}

// The scores s[m][0..W) of mr (1..kScoreKeyRowsMax) rows against the keys [j0, j0 + W) of the
// cache rows (keys past tk give zero scores, as a packed panel's zero columns): ScoreRows on
// PackKeyPanel's panel, fused. W: a multiple of the vector length. v (or null): float32 value rows (v_stride apart) of
// the same keys, to prefetch.
template <class T>
HWY_NOINLINE void ScoreKeyRows(int mr, const T* k, int64_t stride, const float* v,
                               int64_t v_stride, size_t j0, size_t tk, size_t D, size_t W,
                               const float* q, size_t ldq, float* s, size_t lds) {
  switch (mr) {
    case 1: return ScoreKeyPanelRows<1>(k, stride, v, v_stride, j0, tk, D, W, q, ldq, s, lds);
    case 2: return ScoreKeyPanelRows<2>(k, stride, v, v_stride, j0, tk, D, W, q, ldq, s, lds);
    case 3: return ScoreKeyPanelRows<3>(k, stride, v, v_stride, j0, tk, D, W, q, ldq, s, lds);
    case 4: return ScoreKeyPanelRows<4>(k, stride, v, v_stride, j0, tk, D, W, q, ldq, s, lds);
    case 5: return ScoreKeyPanelRows<5>(k, stride, v, v_stride, j0, tk, D, W, q, ldq, s, lds);
#if HWY_TARGET <= HWY_AVX3
    case 6: return ScoreKeyPanelRows<6>(k, stride, v, v_stride, j0, tk, D, W, q, ldq, s, lds);
    case 7: return ScoreKeyPanelRows<7>(k, stride, v, v_stride, j0, tk, D, W, q, ldq, s, lds);
    default: return ScoreKeyPanelRows<8>(k, stride, v, v_stride, j0, tk, D, W, q, ldq, s, lds);
#else
    default: return ScoreKeyPanelRows<6>(k, stride, v, v_stride, j0, tk, D, W, q, ldq, s, lds);
#endif
  }
}
#endif

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
