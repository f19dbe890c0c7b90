// AVX-512 kernels of linear_quantized_int8 (AVX3_DL with VNNI's vpdpbusd / vpdpwssd; AVX3 with
// maddubs + madd in their place) for the 32-value block types Q4_0, Q5_0, Q4_1, Q5_1 and
// for Q4_K, Q5_K, Q6_K (Q8_0 stays on the lane kernels: see quant_int8_lanes-inl.h's PairQ8_0): every (row of x, weight row, block) pair's integer sum is
// formed exactly, then each output runs one float32 chain over its blocks in K's order:
//   acc = fma(float(isum_b), d_w_b * d_x_b, acc)   (+ acc = fma(m_w_b, d_x_b * xsum_b, acc) for
//   Q4_1 / Q5_1; the K-quants below), out = acc + bias,
// where isum_b = sum(q_w * q_x) over the block (the offsets 8, 16 subtracted through xsum_b). The
// integer sums are exact in any order, so the two kernels below may form them differently and
// still give the same bits: a row's outputs do not depend on M, the tile or the thread count.
// - M = 1 (decode): Matvec16 reads 16 weight rows, one after the other, straight from the GGUF
//   blocks (two 32-value blocks per 512-bit product), keeps each block's lanes in L1, and reduces
//   the 16 rows' lanes together (Reduce16): a few shuffles and adds per row and block instead of a
//   float epilogue per row.
// - M > 1 (prefill, scoring): Gemm packs 32 weight rows into an unsigned-byte panel (per block,
//   per 4 values: 32 rows x 4 bytes), so that one vpdpbusd with four bytes of x
//   broadcast serves 16 weight rows; R rows of x x 32 weight rows per register tile, one float
//   epilogue per block per 16 outputs.
// Include after hwy/highway.h inside quant_int8.cc's foreach_target loop.

#if defined(GEMMACPP_CPU_QUANT_INT8_AVX512_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef GEMMACPP_CPU_QUANT_INT8_AVX512_INL_H_
#undef GEMMACPP_CPU_QUANT_INT8_AVX512_INL_H_
#else
#define GEMMACPP_CPU_QUANT_INT8_AVX512_INL_H_
#endif

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL

#include <algorithm>
#include <cstring>
#include <vector>

#include "csrc/cpu/quant_int8_blocks-inl.h"  // BlockBytes, GC_I8_ATTR
#include "csrc/cpu/quant_int8_lanes-inl.h"   // HalfAt, FifthBits, DecodeQ45_K, DecodeQ6_K
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
using int8::XRow;
namespace avx512 {

// vpdpbusd (acc + the sums of 4 products u * x, u unsigned and x signed bytes) and vpdpwssd (acc +
// the sums of 2 products of int16): one instruction on AVX3_DL; on AVX3 (AVX-512 without VNNI)
// maddubs + madd, exact as long as no pair of u * x products exceeds int16, which holds for the
// types AVX3 takes here (u <= 63).
GC_I8_ATTR HWY_INLINE __m512i DotU8I8(__m512i acc, __m512i u, __m512i x) {
#if GC_I8_VNNI
  return _mm512_dpbusd_epi32(acc, u, x);
#else
  const __m512i pairs = _mm512_maddubs_epi16(u, x);
  return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
#endif
}
GC_I8_ATTR HWY_INLINE __m512i DotI16(__m512i acc, __m512i a, __m512i b) {
#if GC_I8_VNNI
  return _mm512_dpwssd_epi32(acc, a, b);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
#endif
}

constexpr bool Handles(QType t) {
  return t == QType::kQ4_0 || t == QType::kQ5_0 ||
         t == QType::kQ4_1 || t == QType::kQ5_1 || t == QType::kQ4_K || t == QType::kQ5_K ||
         t == QType::kQ6_K;
}
constexpr bool HasMin32(QType t) { return t == QType::kQ4_1 || t == QType::kQ5_1; }

// The block's 32 values as unsigned bytes in value order, as stored (the offset 8 or 16 is taken
// off through the x sums: XRow::nsum8, whose first lane per block is -offset * xsum_b).
template <QType T>
GC_I8_ATTR HWY_INLINE __m256i U32(const uint8_t* HWY_RESTRICT blk) {
  constexpr bool kMin = HasMin32(T);
  constexpr bool kFive = T == QType::kQ5_0 || T == QType::kQ5_1;
  constexpr size_t kQh = kMin ? 4 : 2;
  const __m128i q16 =
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + kQh + (kFive ? 4 : 0)));
  const __m128i nib = _mm_set1_epi8(0xF);
  __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q16, 4), nib),
                               _mm_and_si128(q16, nib));
  if constexpr (kFive) {
    uint32_t qh;
    std::memcpy(&qh, blk + kQh, 4);
    u = _mm256_or_si256(u, FifthBits(qh));
  }
  return u;
}

// Lanes 0-7 of p[r] summed into lane r of *lo, lanes 8-15 into lane r of *hi (r < 16): the two
// blocks' integer sums of 16 weight rows, by pairwise interleaves (44 instructions in all).
// First step, as soon as two rows' lanes are there (fewer live registers): per 128 bits
// [A0+A2, B0+B2, A1+A3, B1+B3].
GC_I8_ATTR HWY_INLINE __m512i ReducePair(__m512i pa, __m512i pb) {
  return _mm512_add_epi32(_mm512_unpacklo_epi32(pa, pb), _mm512_unpackhi_epi32(pa, pb));
}

// The rest, from ReducePair of rows (0, 1), (2, 3), ... (14, 15).
GC_I8_ATTR HWY_INLINE void Reduce16(const __m512i* a, __m512i* lo, __m512i* hi) {
  __m512i c[4], e[2];
  for (int i = 0; i < 4; ++i)  // per 128 bits: rows 4i .. 4i + 3, each its 4 lanes' sum
    c[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(a[2 * i], a[2 * i + 1]),
                            _mm512_unpackhi_epi64(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 2; ++i)  // [rows 8i..+3 lo, same hi, rows 8i+4..+7 lo, same hi]
    e[i] = _mm512_add_epi32(_mm512_shuffle_i64x2(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_i64x2(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  *lo = _mm512_shuffle_i64x2(e[0], e[1], _MM_SHUFFLE(2, 0, 2, 0));
  *hi = _mm512_shuffle_i64x2(e[0], e[1], _MM_SHUFFLE(3, 1, 3, 1));
}

// ---- M > 1 ------------------------------------------------------------------------------------

constexpr size_t kNr = 32;                 // weight rows per panel
constexpr size_t kPanelBlock = kNr * 32;   // panel bytes per block
constexpr size_t kMr = 4;                  // rows of x per register tile

// Weight rows [0, nr) of the strip into the panel: per block b, group j of 4 values, byte
// 128 j + 4 r + i of block b's 1024 is value 4 j + i of row r; dw (and mw) 32 floats per block.
// Rows nr .. 31 are zero.
template <QType T>
GC_I8_ATTR HWY_INLINE void Pack(const uint8_t* HWY_RESTRICT w, size_t row_bytes, size_t nr,
                                size_t blocks, uint8_t* HWY_RESTRICT panel, float* HWY_RESTRICT dw,
                                float* HWY_RESTRICT mw) {
  constexpr size_t bb = BlockBytes(T);
  for (size_t g = 0; g < kNr / 4; ++g) {
    const uint8_t* rw[4];
    bool live[4];
    for (size_t k = 0; k < 4; ++k) {
      live[k] = 4 * g + k < nr;
      rw[k] = w + std::min(4 * g + k, nr - 1) * row_bytes;
    }
    for (size_t b = 0; b < blocks; ++b) {
      __m256i u[4];
      for (size_t k = 0; k < 4; ++k) {
        const uint8_t* blk = rw[k] + b * bb;
        u[k] = live[k] ? U32<T>(blk) : _mm256_setzero_si256();
        dw[32 * b + 4 * g + k] = live[k] ? HalfAt(blk) : 0.0f;
        if constexpr (HasMin32(T)) mw[32 * b + 4 * g + k] = live[k] ? HalfAt(blk + 2) : 0.0f;
      }
      // 4 rows x 8 dwords -> per dword j, the 4 rows' 16 bytes
      const __m256i t0 = _mm256_unpacklo_epi32(u[0], u[1]), t1 = _mm256_unpackhi_epi32(u[0], u[1]);
      const __m256i t2 = _mm256_unpacklo_epi32(u[2], u[3]), t3 = _mm256_unpackhi_epi32(u[2], u[3]);
      const __m256i o[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2),
                            _mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3)};
      uint8_t* pb = panel + b * kPanelBlock + 16 * g;
      for (int j = 0; j < 4; ++j) {  // o[j]: dword j (low 128 bits) and j + 4 (high)
        _mm_store_si128(reinterpret_cast<__m128i*>(pb + 128 * j), _mm256_castsi256_si128(o[j]));
        _mm_store_si128(reinterpret_cast<__m128i*>(pb + 128 * (j + 4)),
                        _mm256_extracti128_si256(o[j], 1));
      }
    }
  }
}

// f[r][0..1] + bias into out[r * ldo + c] for c < nc (<= 32).
template <size_t R>
GC_I8_ATTR HWY_INLINE void StoreTile(const __m512 (*f)[2], const float* bias, size_t nc,
                                     float* out, size_t ldo) {
  const __mmask16 m0 = __mmask16(nc >= 16 ? 0xFFFF : (1u << nc) - 1);
  const __mmask16 m1 = __mmask16(nc >= 32 ? 0xFFFF : nc <= 16 ? 0 : (1u << (nc - 16)) - 1);
  const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
  for (size_t r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(out + r * ldo, m0, _mm512_add_ps(f[r][0], b0));
    _mm512_mask_storeu_ps(out + r * ldo + 16, m1, _mm512_add_ps(f[r][1], b1));
  }
}

// R rows of x against the packed strip: out[r * ldo + c] for c < nc.
template <QType T, size_t R>
GC_I8_ATTR HWY_INLINE void GemmTile(const uint8_t* HWY_RESTRICT panel, const float* dw,
                                    const float* mw, size_t blocks, const XRow* xr,
                                    const float* bias, size_t nc, float* out, size_t ldo) {
  __m512 f[R][2];
  for (size_t r = 0; r < R; ++r) f[r][0] = f[r][1] = _mm512_setzero_ps();
  for (size_t b = 0; b < blocks; ++b) {
    __m512i s[R][2];
    for (size_t r = 0; r < R; ++r) {
      s[r][0] = s[r][1] =
          HasMin32(T) ? _mm512_setzero_si512() : _mm512_set1_epi32(xr[r].nsum8[8 * b]);
    }
    const uint8_t* pb = panel + b * kPanelBlock;
    for (size_t j = 0; j < 8; ++j) {
      const __m512i w0 = _mm512_load_si512(pb + 128 * j);
      const __m512i w1 = _mm512_load_si512(pb + 128 * j + 64);
      for (size_t r = 0; r < R; ++r) {
        int32_t xv;
        std::memcpy(&xv, xr[r].q + 32 * b + 4 * j, 4);
        const __m512i xb = _mm512_set1_epi32(xv);
        s[r][0] = DotU8I8(s[r][0], w0, xb);
        s[r][1] = DotU8I8(s[r][1], w1, xb);
      }
    }
    const __m512 d0 = _mm512_load_ps(dw + 32 * b), d1 = _mm512_load_ps(dw + 32 * b + 16);
    for (size_t r = 0; r < R; ++r) {
      const __m512 dx = _mm512_set1_ps(xr[r].d[b]);
      f[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r][0]), _mm512_mul_ps(d0, dx), f[r][0]);
      f[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r][1]), _mm512_mul_ps(d1, dx), f[r][1]);
      if constexpr (HasMin32(T)) {
        const __m512 ds = _mm512_set1_ps(xr[r].ds[b]);
        f[r][0] = _mm512_fmadd_ps(_mm512_load_ps(mw + 32 * b), ds, f[r][0]);
        f[r][1] = _mm512_fmadd_ps(_mm512_load_ps(mw + 32 * b + 16), ds, f[r][1]);
      }
    }
  }
  StoreTile<R>(f, bias, nc, out, ldo);
}

template <QType T, size_t kMax>
GC_I8_ATTR HWY_INLINE void GemmTileUpTo(size_t R, const uint8_t* panel, const float* dw,
                                        const float* mw, size_t blocks, const XRow* xr,
                                        const float* bias, size_t nc, float* out, size_t ldo) {
  if constexpr (kMax > 1) {
    if (R < kMax) {
      return GemmTileUpTo<T, kMax - 1>(R, panel, dw, mw, blocks, xr, bias, nc, out, ldo);
    }
  }
  GemmTile<T, kMax>(panel, dw, mw, blocks, xr, bias, nc, out, ldo);
}

template <QType T>
GC_I8_ATTR HWY_NOINLINE void Gemm(const uint8_t* HWY_RESTRICT w, size_t row_bytes, size_t n,
                                  size_t blocks, const XRow* xr, size_t M, const float* bias,
                                  float* out, size_t ldo) {
  // This thread's panel, kept between calls.
  static thread_local std::vector<uint8_t> buf;
  const size_t panel_bytes = blocks * kPanelBlock, scale_bytes = blocks * kNr * sizeof(float);
  buf.resize(panel_bytes + 2 * scale_bytes + 64);
  uint8_t* panel = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) &
                                              ~uintptr_t(63));
  float* dw = reinterpret_cast<float*>(panel + panel_bytes);
  float* mw = dw + blocks * kNr;
  for (size_t n0 = 0; n0 < n; n0 += kNr) {
    const size_t nc = std::min(kNr, n - n0);
    Pack<T>(w + n0 * row_bytes, row_bytes, nc, blocks, panel, dw, mw);
    for (size_t m0 = 0; m0 < M; m0 += kMr) {
      GemmTileUpTo<T, kMr>(std::min(kMr, M - m0), panel, dw, mw, blocks, xr + m0,
                           bias ? bias + n0 : nullptr, nc, out + m0 * ldo + n0, ldo);
    }
  }
}

// ---- K-quants (Q4_K, Q5_K, Q6_K) --------------------------------------------------------------
// isum_b = sum_g sc_g * sum(u q_x) over the groups (32 values, 16 for Q6_K), Q6_K's offset 32 taken
// off as -32 * sum_g sc_g * xsum_g; Q4_K / Q5_K add aux_b = sum_j m_j * xsum_j as a second float
// term: acc = fma(float(isum_b), d * d_x, acc), acc = fnmadd(float(aux_b), dmin * d_x, acc).

constexpr bool IsK(QType t) { return t == QType::kQ4_K || t == QType::kQ5_K || t == QType::kQ6_K; }
constexpr bool HasMinK(QType t) { return t == QType::kQ4_K || t == QType::kQ5_K; }
constexpr size_t KGroups(QType t) { return t == QType::kQ6_K ? 16 : 8; }

template <QType T>
GC_I8_ATTR HWY_INLINE void DecodeK(const uint8_t* HWY_RESTRICT blk, __m256i* u) {
  if constexpr (T == QType::kQ6_K) DecodeQ6_K(blk, u);
  else DecodeQ45_K<T == QType::kQ5_K>(blk, u);
}

// One weight row's block b against x: lanes whose sum is isum_b (low 256 bits) and aux_b (high).
template <QType T>
GC_I8_ATTR HWY_INLINE __m512i KLanes(const uint8_t* HWY_RESTRICT blk, const XRow& x, size_t b) {
  __m256i u[8];
  DecodeK<T>(blk, u);
  const int8_t* xq = x.q + 256 * b;
  const __m256i s16 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.s16 + 16 * b));
  __m256i a = _mm256_setzero_si256();
  if constexpr (T == QType::kQ6_K) {
    const int8_t* s = reinterpret_cast<const int8_t*>(blk + 192);
    for (int j = 0; j < 8; ++j) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * j));
      const __m256i sc = _mm256_set_m128i(_mm_set1_epi16(s[2 * j + 1]), _mm_set1_epi16(s[2 * j]));
      a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(u[j], xv), sc));
    }
    const __m256i sc16 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
    const __m256i aux = _mm256_madd_epi16(s16, sc16);
    return _mm512_zextsi256_si512(_mm256_sub_epi32(a, _mm256_slli_epi32(aux, 5)));
  } else {
    uint64_t scales, mins;
    quant::kquant_scales_mins(blk + 4, &scales, &mins);
    for (int j = 0; j < 8; ++j) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * j));
      const __m256i sc = _mm256_set1_epi16(int16_t((scales >> (8 * j)) & 0xFF));
      a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(u[j], xv), sc));
    }
    const __m128i m8 = _mm_cvtsi64_si128(int64_t(mins));
    const __m256i mv = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m0 m0 m1 m1 ...
    return _mm512_inserti64x4(_mm512_castsi256_si512(a), _mm256_madd_epi16(s16, mv), 1);
  }
}

constexpr size_t KScaleAt(QType t) { return t == QType::kQ6_K ? 208 : 0; }

// The K-quant panel of 32 weight rows, per block: u (256 values: byte 128 j + 4 r + i is value
// 4 j + i of row r), sc (per group, 32 rows' int32 scales), pr (8 x 32 int16 pairs: Q4_K / Q5_K
// (m_k, m_k), Q6_K (-32 sc_2k, -32 sc_2k+1), against x's 16-value sums), dw, mw (32 floats each).
struct KPanel {
  uint8_t* u;
  int32_t* sc;
  int32_t* pr;
  float* dw;
  float* mw;
};
constexpr size_t kKU = 8192;

template <QType T>
GC_I8_ATTR HWY_INLINE void PackK(const uint8_t* HWY_RESTRICT w, size_t row_bytes, size_t nr,
                                 size_t blocks, const KPanel& pn) {
  constexpr size_t bb = BlockBytes(T), G = KGroups(T);
  for (size_t g = 0; g < kNr / 4; ++g) {
    for (size_t b = 0; b < blocks; ++b) {
      __m256i u[4][8];
      for (size_t k = 0; k < 4; ++k) {
        const size_t r = 4 * g + k;
        int32_t* sc = pn.sc + (b * G) * kNr + r;
        int32_t* pr = pn.pr + (b * 8) * kNr + r;
        if (r >= nr) {
          for (auto& v : u[k]) v = _mm256_setzero_si256();
          for (size_t i = 0; i < G; ++i) sc[i * kNr] = 0;
          for (size_t i = 0; i < 8; ++i) pr[i * kNr] = 0;
          pn.dw[b * kNr + r] = 0.0f;
          pn.mw[b * kNr + r] = 0.0f;
          continue;
        }
        const uint8_t* blk = w + r * row_bytes + b * bb;
        DecodeK<T>(blk, u[k]);
        pn.dw[b * kNr + r] = HalfAt(blk + KScaleAt(T));
        if constexpr (T == QType::kQ6_K) {
          const int8_t* s = reinterpret_cast<const int8_t*>(blk + 192);
          for (size_t i = 0; i < 16; ++i) sc[i * kNr] = s[i];
          for (size_t i = 0; i < 8; ++i)
            pr[i * kNr] = int32_t(uint32_t(uint16_t(int16_t(-32 * s[2 * i]))) |
                                  uint32_t(uint16_t(int16_t(-32 * s[2 * i + 1]))) << 16);
          pn.mw[b * kNr + r] = 0.0f;
        } else {
          uint64_t scales, mins;
          quant::kquant_scales_mins(blk + 4, &scales, &mins);
          for (size_t i = 0; i < 8; ++i) {
            const uint32_t mn = uint32_t(mins >> (8 * i)) & 0xFF;
            sc[i * kNr] = int32_t((scales >> (8 * i)) & 0xFF);
            pr[i * kNr] = int32_t(mn | mn << 16);
          }
          pn.mw[b * kNr + r] = HalfAt(blk + 2);
        }
      }
      for (size_t jj = 0; jj < 8; ++jj) {
        const __m256i t0 = _mm256_unpacklo_epi32(u[0][jj], u[1][jj]);
        const __m256i t1 = _mm256_unpackhi_epi32(u[0][jj], u[1][jj]);
        const __m256i t2 = _mm256_unpacklo_epi32(u[2][jj], u[3][jj]);
        const __m256i t3 = _mm256_unpackhi_epi32(u[2][jj], u[3][jj]);
        const __m256i o[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2),
                              _mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3)};
        uint8_t* pb = pn.u + b * kKU + 8 * jj * 128 + 16 * g;
        for (int j = 0; j < 4; ++j) {
          _mm_store_si128(reinterpret_cast<__m128i*>(pb + 128 * j), _mm256_castsi256_si128(o[j]));
          _mm_store_si128(reinterpret_cast<__m128i*>(pb + 128 * (j + 4)),
                          _mm256_extracti128_si256(o[j], 1));
        }
      }
    }
  }
}

template <QType T, size_t R>
GC_I8_ATTR HWY_INLINE void GemmTileK(const KPanel& pn, size_t blocks, const XRow* xr,
                                     const float* bias, size_t nc, float* out, size_t ldo) {
  constexpr size_t G = KGroups(T), kDw = 64 / G;  // dwords of 4 values per group
  __m512 f[R][2];
  for (size_t r = 0; r < R; ++r) f[r][0] = f[r][1] = _mm512_setzero_ps();
  for (size_t b = 0; b < blocks; ++b) {
    __m512i s[R][2];
    for (size_t r = 0; r < R; ++r) s[r][0] = s[r][1] = _mm512_setzero_si512();
    if constexpr (T == QType::kQ6_K) {  // -32 * sum_g sc_g * xsum_g
      for (size_t k = 0; k < 8; ++k) {
        const __m512i p0 = _mm512_load_si512(pn.pr + (b * 8 + k) * kNr);
        const __m512i p1 = _mm512_load_si512(pn.pr + (b * 8 + k) * kNr + 16);
        for (size_t r = 0; r < R; ++r) {
          int32_t xs;
          std::memcpy(&xs, xr[r].s16 + 16 * b + 2 * k, 4);
          const __m512i xb = _mm512_set1_epi32(xs);
          s[r][0] = DotI16(s[r][0], p0, xb);
          s[r][1] = DotI16(s[r][1], p1, xb);
        }
      }
    }
    const uint8_t* pb = pn.u + b * kKU;
    for (size_t g = 0; g < G; ++g) {
      __m512i t[R][2];
      for (size_t r = 0; r < R; ++r) t[r][0] = t[r][1] = _mm512_setzero_si512();
      for (size_t jj = 0; jj < kDw; ++jj) {
        const size_t j = g * kDw + jj;
        const __m512i w0 = _mm512_load_si512(pb + 128 * j);
        const __m512i w1 = _mm512_load_si512(pb + 128 * j + 64);
        for (size_t r = 0; r < R; ++r) {
          int32_t xv;
          std::memcpy(&xv, xr[r].q + 256 * b + 4 * j, 4);
          const __m512i xb = _mm512_set1_epi32(xv);
          t[r][0] = DotU8I8(t[r][0], w0, xb);
          t[r][1] = DotU8I8(t[r][1], w1, xb);
        }
      }
      const __m512i sc0 = _mm512_load_si512(pn.sc + (b * G + g) * kNr);
      const __m512i sc1 = _mm512_load_si512(pn.sc + (b * G + g) * kNr + 16);
      for (size_t r = 0; r < R; ++r) {
        s[r][0] = _mm512_add_epi32(s[r][0], _mm512_mullo_epi32(t[r][0], sc0));
        s[r][1] = _mm512_add_epi32(s[r][1], _mm512_mullo_epi32(t[r][1], sc1));
      }
    }
    const __m512 d0 = _mm512_load_ps(pn.dw + b * kNr), d1 = _mm512_load_ps(pn.dw + b * kNr + 16);
    for (size_t r = 0; r < R; ++r) {
      const __m512 dx = _mm512_set1_ps(xr[r].d[b]);
      f[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r][0]), _mm512_mul_ps(d0, dx), f[r][0]);
      f[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r][1]), _mm512_mul_ps(d1, dx), f[r][1]);
    }
    if constexpr (HasMinK(T)) {  // aux_b = sum_j m_j * xsum_j
      const __m512 m0 = _mm512_load_ps(pn.mw + b * kNr), m1 = _mm512_load_ps(pn.mw + b * kNr + 16);
      for (size_t r = 0; r < R; ++r) {
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        for (size_t k = 0; k < 8; ++k) {
          int32_t xs;
          std::memcpy(&xs, xr[r].s16 + 16 * b + 2 * k, 4);
          const __m512i xb = _mm512_set1_epi32(xs);
          a0 = DotI16(a0, _mm512_load_si512(pn.pr + (b * 8 + k) * kNr), xb);
          a1 = DotI16(a1, _mm512_load_si512(pn.pr + (b * 8 + k) * kNr + 16), xb);
        }
        const __m512 dx = _mm512_set1_ps(xr[r].d[b]);
        f[r][0] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(a0), _mm512_mul_ps(m0, dx), f[r][0]);
        f[r][1] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(a1), _mm512_mul_ps(m1, dx), f[r][1]);
      }
    }
  }
  StoreTile<R>(f, bias, nc, out, ldo);
}

template <QType T, size_t kMax>
GC_I8_ATTR HWY_INLINE void GemmTileKUpTo(size_t R, const KPanel& pn, size_t blocks,
                                         const XRow* xr, const float* bias, size_t nc, float* out,
                                         size_t ldo) {
  if constexpr (kMax > 1) {
    if (R < kMax) return GemmTileKUpTo<T, kMax - 1>(R, pn, blocks, xr, bias, nc, out, ldo);
  }
  GemmTileK<T, kMax>(pn, blocks, xr, bias, nc, out, ldo);
}

template <QType T>
GC_I8_ATTR HWY_NOINLINE void GemmK(const uint8_t* HWY_RESTRICT w, size_t row_bytes, size_t n,
                                   size_t blocks, const XRow* xr, size_t M, const float* bias,
                                   float* out, size_t ldo) {
  constexpr size_t G = KGroups(T);
  static thread_local std::vector<uint8_t> buf;
  const size_t u_bytes = blocks * kKU, sc_bytes = blocks * G * kNr * 4,
               pr_bytes = blocks * 8 * kNr * 4, f_bytes = blocks * kNr * 4;
  buf.resize(u_bytes + sc_bytes + pr_bytes + 2 * f_bytes + 64);
  uint8_t* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) &
                                             ~uintptr_t(63));
  KPanel pn;
  pn.u = base;
  pn.sc = reinterpret_cast<int32_t*>(base + u_bytes);
  pn.pr = reinterpret_cast<int32_t*>(base + u_bytes + sc_bytes);
  pn.dw = reinterpret_cast<float*>(base + u_bytes + sc_bytes + pr_bytes);
  pn.mw = pn.dw + blocks * kNr;
  for (size_t n0 = 0; n0 < n; n0 += kNr) {
    const size_t nc = std::min(kNr, n - n0);
    PackK<T>(w + n0 * row_bytes, row_bytes, nc, blocks, pn);
    for (size_t m0 = 0; m0 < M; m0 += kMr) {
      GemmTileKUpTo<T, kMr>(std::min(kMr, M - m0), pn, blocks, xr + m0,
                            bias ? bias + n0 : nullptr, nc, out + m0 * ldo + n0, ldo);
    }
  }
}

// ---- M = 1 ------------------------------------------------------------------------------------
// 16 weight rows at a time, each read start to end (one stream, as the hardware prefetchers
// like): per row, each step's integer lanes (a 32-value block pair, or a K-quant block: isum's
// lanes low, aux's high) go to an L1 scratch row, the scales to a small array; then per step the
// 16 rows' lanes are reduced together (Reduce16) and the 16 outputs' float chains advance.

// Lanes of block pair (b, b + 1) of one row (b + 1 only if kTwo): sums isum_b (low 256 bits) and
// isum_b+1 (high).
template <QType T, bool kTwo>
GC_I8_ATTR HWY_INLINE __m512i PairLanes(const uint8_t* HWY_RESTRICT blk, __m512i xq,
                                        __m512i start) {
  __m512i u = _mm512_castsi256_si512(U32<T>(blk));
  if constexpr (kTwo) u = _mm512_inserti64x4(u, U32<T>(blk + BlockBytes(T)), 1);
  else u = _mm512_zextsi256_si512(_mm512_castsi512_si256(u));
  return DotU8I8(start, u, xq);
}

// Bytes ahead of the weight stream to prefetch: ahead of the lanes' reduction too, which issues
// no weight loads (measured on the 270M's head, busy machine: 0, 1 KiB and 16 KiB lost to 4 KiB).
constexpr size_t kPrefetch = 4096;

template <QType T>
GC_I8_ATTR HWY_NOINLINE void Matvec16(const uint8_t* HWY_RESTRICT w, size_t row_bytes, size_t n,
                                      size_t blocks, const XRow& x, const float* bias,
                                      float* out) {
  constexpr size_t bb = BlockBytes(T);
  constexpr bool kK = IsK(T);
  constexpr bool kMin = kK ? HasMinK(T) : HasMin32(T);
  const size_t steps = kK ? blocks : (blocks + 1) / 2, pairs = blocks / 2;
  static thread_local std::vector<uint8_t> lanes_tl;
  static thread_local std::vector<uint16_t> dh_tl, mh_tl;  // per step: 32 (two blocks x 16 rows)
  lanes_tl.resize(steps * 16 * 64 + 64);
  dh_tl.resize(steps * 32);
  mh_tl.resize(steps * 32);
  __m512i* lanes = reinterpret_cast<__m512i*>(
      (reinterpret_cast<uintptr_t>(lanes_tl.data()) + 63) & ~uintptr_t(63));
  uint16_t* dh = dh_tl.data();
  uint16_t* mh = mh_tl.data();
  for (size_t i0 = 0; i0 < n; i0 += 16) {
    const size_t nr = std::min<size_t>(16, n - i0);
    for (size_t r = 0; r < nr; ++r) {  // rows nr .. 15: stale lanes, outputs not stored
      const uint8_t* row = w + (i0 + r) * row_bytes;
      if constexpr (kK) {
        for (size_t b = 0; b < blocks; ++b) {
          const uint8_t* blk = row + b * bb;
          for (size_t l = 0; l < bb; l += 64)
            _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetch + l), _MM_HINT_T0);
          lanes[b * 16 + r] = KLanes<T>(blk, x, b);
          std::memcpy(dh + 32 * b + r, blk + KScaleAt(T), 2);
          if constexpr (kMin) std::memcpy(mh + 32 * b + r, blk + 2, 2);
        }
      } else {
        for (size_t s = 0; s < pairs; ++s) {
          const uint8_t* blk = row + 2 * s * bb;
          // Ahead of the hardware prefetcher (one line per step: the steps are 44 to 68 bytes).
          _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetch), _MM_HINT_T0);
          const __m512i xq = _mm512_loadu_si512(x.q + 64 * s);
          const __m512i start =
              kMin ? _mm512_setzero_si512() : _mm512_loadu_si512(x.nsum8 + 16 * s);
          lanes[s * 16 + r] = PairLanes<T, true>(blk, xq, start);
          std::memcpy(dh + 32 * s + r, blk, 2);
          std::memcpy(dh + 32 * s + 16 + r, blk + bb, 2);
          if constexpr (kMin) {
            std::memcpy(mh + 32 * s + r, blk + 2, 2);
            std::memcpy(mh + 32 * s + 16 + r, blk + bb + 2, 2);
          }
        }
        if (pairs < steps) {  // an odd last block
          const size_t s = pairs;
          const uint8_t* blk = row + 2 * s * bb;
          const __m512i xq = _mm512_zextsi256_si512(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q + 64 * s)));
          const __m512i start =
              kMin ? _mm512_setzero_si512()
                   : _mm512_zextsi256_si512(_mm256_loadu_si256(
                         reinterpret_cast<const __m256i*>(x.nsum8 + 16 * s)));
          lanes[s * 16 + r] = PairLanes<T, false>(blk, xq, start);
          std::memcpy(dh + 32 * s + r, blk, 2);
          if constexpr (kMin) std::memcpy(mh + 32 * s + r, blk + 2, 2);
        }
      }
    }
    __m512 acc = _mm512_setzero_ps();
    for (size_t s = 0; s < steps; ++s) {
      __m512i a[8], lo, hi;
      for (int i = 0; i < 8; ++i) {
        a[i] = ReducePair(lanes[16 * s + 2 * i], lanes[16 * s + 2 * i + 1]);
      }
      Reduce16(a, &lo, &hi);
      const __m256i* d16 = reinterpret_cast<const __m256i*>(dh + 32 * s);
      const __m256i* m16 = reinterpret_cast<const __m256i*>(mh + 32 * s);
      if constexpr (kK) {
        const __m512 dx = _mm512_set1_ps(x.d[s]);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo),
                              _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(d16)), dx), acc);
        if constexpr (kMin) {
          acc = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(hi),
                                 _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(m16)), dx), acc);
        }
      } else {
        for (size_t h = 0; h < (2 * s + 1 < blocks ? 2u : 1u); ++h) {
          const size_t b = 2 * s + h;
          acc = _mm512_fmadd_ps(
              _mm512_cvtepi32_ps(h ? hi : lo),
              _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(d16 + h)), _mm512_set1_ps(x.d[b])),
              acc);
          if constexpr (kMin) {
            acc = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(m16 + h)),
                                  _mm512_set1_ps(x.ds[b]), acc);
          }
        }
      }
    }
    const __mmask16 m = __mmask16((1u << nr) - 1);
    const __m512 bv = bias ? _mm512_maskz_loadu_ps(m, bias + i0) : _mm512_setzero_ps();
    _mm512_mask_storeu_ps(out + i0, m, _mm512_add_ps(acc, bv));
  }
}

// n weight rows against the M rows of x.
template <QType T>
GC_I8_ATTR HWY_INLINE void Rows(const uint8_t* w, size_t row_bytes, size_t n, size_t blocks,
                                const XRow* xr, size_t M, const float* bias, float* out,
                                size_t ldo) {
  if constexpr (IsK(T)) {
    if (M == 1) return Matvec16<T>(w, row_bytes, n, blocks, xr[0], bias, out);
    GemmK<T>(w, row_bytes, n, blocks, xr, M, bias, out, ldo);
  } else {
    if (M == 1) return Matvec16<T>(w, row_bytes, n, blocks, xr[0], bias, out);
    Gemm<T>(w, row_bytes, n, blocks, xr, M, bias, out, ldo);
  }
}

}  // namespace avx512
}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#endif  // include guard
