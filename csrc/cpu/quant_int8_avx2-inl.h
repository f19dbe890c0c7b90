// AVX2 kernels of linear_quantized_int8 for Q4_0, Q5_0, Q4_1, Q5_1, Q4_K, Q5_K, Q6_K: the
// whole-block arithmetic of quant_int8_avx512-inl.h in 256-bit registers (maddubs + madd for the
// unsigned-by-signed byte products; Q8_0 stays on the lane kernels: its w + 128 would overflow
// maddubs's int16 pair sums). Every (row of x, weight row, block) integer sum is exact, then each
// output runs one float32 chain over its blocks in K's order:
//   acc = fma(float(isum_b), d_w_b * d_x_b, acc)  (+ acc = fma(m_w_b, d_x_b * xsum_b, acc) for
//   Q4_1 / Q5_1; acc = fnmadd(float(aux_b), dmin_b * d_x_b, acc) for Q4_K / Q5_K),
//   out = acc + bias,
// the same chain in both kernels below, so a row's outputs do not depend on M, the tile or the
// thread count (they may differ from AVX-512's in the last bits: batch invariance is per target).
// - M = 1 (decode): Matvec8 reads 8 weight rows, one after the other, straight from the GGUF
//   blocks, keeps each block's 8 integer lanes in L1, then reduces the 8 rows' lanes together
//   (Reduce8) and advances the 8 outputs' float chains.
// - M > 1: Gemm packs 16 weight rows into an unsigned-byte panel (per block, per 4 values: 16 rows
//   x 4 bytes), so that one maddubs + madd with four bytes of x broadcast serves 8 weight rows;
//   kMr rows of x x 16 weight rows per register tile, one float epilogue per block.
// Include after hwy/highway.h inside quant_int8.cc's foreach_target loop.

#if defined(GEMMACPP_CPU_QUANT_INT8_AVX2_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef GEMMACPP_CPU_QUANT_INT8_AVX2_INL_H_
#undef GEMMACPP_CPU_QUANT_INT8_AVX2_INL_H_
#else
#define GEMMACPP_CPU_QUANT_INT8_AVX2_INL_H_
#endif

#if HWY_TARGET == HWY_AVX2

#include <algorithm>
#include <cstring>
#include <vector>

#include "csrc/cpu/quant_int8_blocks-inl.h"  // BlockBytes, GC_I8_ATTR
#include "csrc/cpu/quant_int8_lanes-inl.h"   // HalfAt, FifthBits, DecodeQ45_K, DecodeQ6_K
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
using int8::XRow;
namespace avx2 {

// acc + the sums of 4 products u * x (u unsigned, x signed bytes): exact while no pair of
// products exceeds int16, which holds for these types (u <= 63, |x| <= 127).
HWY_INLINE __m256i DotU8I8(__m256i acc, __m256i u, __m256i x) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1)));
}

constexpr bool Handles(QType t) {
  return t == QType::kQ4_0 || t == QType::kQ5_0 || t == QType::kQ4_1 || t == QType::kQ5_1 ||
         t == QType::kQ4_K || t == QType::kQ5_K || t == QType::kQ6_K;
}
constexpr bool HasMin32(QType t) { return t == QType::kQ4_1 || t == QType::kQ5_1; }
constexpr bool IsK(QType t) { return t == QType::kQ4_K || t == QType::kQ5_K || t == QType::kQ6_K; }
constexpr bool HasMinK(QType t) { return t == QType::kQ4_K || t == QType::kQ5_K; }
constexpr size_t KGroups(QType t) { return t == QType::kQ6_K ? 16 : 8; }
constexpr size_t KScaleAt(QType t) { return t == QType::kQ6_K ? 208 : 0; }

// The 32-value block's values as unsigned bytes in value order, as stored (the offset 8 or 16 is
// taken off through the x sums: XRow::nsum8).
template <QType T>
HWY_INLINE __m256i U32(const uint8_t* HWY_RESTRICT blk) {
  constexpr bool kFive = T == QType::kQ5_0 || T == QType::kQ5_1;
  constexpr size_t kQh = HasMin32(T) ? 4 : 2;
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

template <QType T>
HWY_INLINE void DecodeK(const uint8_t* HWY_RESTRICT blk, __m256i* u) {
  if constexpr (T == QType::kQ6_K) DecodeQ6_K(blk, u);
  else DecodeQ45_K<T == QType::kQ5_K>(blk, u);
}

// Lane r of the result: the sum of a[r]'s 8 lanes.
HWY_INLINE __m256i Reduce8(const __m256i* a) {
  const __m256i t0 = _mm256_hadd_epi32(a[0], a[1]), t1 = _mm256_hadd_epi32(a[2], a[3]);
  const __m256i t2 = _mm256_hadd_epi32(a[4], a[5]), t3 = _mm256_hadd_epi32(a[6], a[7]);
  const __m256i u0 = _mm256_hadd_epi32(t0, t1), u1 = _mm256_hadd_epi32(t2, t3);
  return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20),
                          _mm256_permute2x128_si256(u0, u1, 0x31));
}

// Four rows' 32 bytes (u[k]: row k) transposed into o: o[j] holds dword j of the 4 rows (low 128
// bits) and dword j + 4 (high).
HWY_INLINE void Transpose4(const __m256i* u, __m256i* o) {
  const __m256i t0 = _mm256_unpacklo_epi32(u[0], u[1]), t1 = _mm256_unpackhi_epi32(u[0], u[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(u[2], u[3]), t3 = _mm256_unpackhi_epi32(u[2], u[3]);
  o[0] = _mm256_unpacklo_epi64(t0, t2);
  o[1] = _mm256_unpackhi_epi64(t0, t2);
  o[2] = _mm256_unpacklo_epi64(t1, t3);
  o[3] = _mm256_unpackhi_epi64(t1, t3);
}

// ---- M > 1 ------------------------------------------------------------------------------------

constexpr size_t kNr = 16;                // weight rows per panel
constexpr size_t kPanelBlock = kNr * 32;  // panel bytes per 32 values
constexpr size_t kMr = 4;                 // rows of x per register tile

// o (Transpose4 of rows 4g .. 4g + 3) into the panel chunk of 8 dwords at pb: byte 64 j + 4 r + i
// is value 4 j + i of row r.
HWY_INLINE void Store4(const __m256i* o, size_t g, uint8_t* pb) {
  for (int j = 0; j < 4; ++j) {
    _mm_store_si128(reinterpret_cast<__m128i*>(pb + 64 * j + 16 * g), _mm256_castsi256_si128(o[j]));
    _mm_store_si128(reinterpret_cast<__m128i*>(pb + 64 * (j + 4) + 16 * g),
                    _mm256_extracti128_si256(o[j], 1));
  }
}

// Weight rows [0, nr) of the strip into the panel (rows nr .. 15 zero); dw (and mw) 16 floats per
// block.
template <QType T>
HWY_INLINE void Pack(const uint8_t* HWY_RESTRICT w, size_t row_bytes, size_t nr, size_t blocks,
                     uint8_t* HWY_RESTRICT panel, float* HWY_RESTRICT dw, float* HWY_RESTRICT mw) {
  constexpr size_t bb = BlockBytes(T);
  for (size_t g = 0; g < kNr / 4; ++g) {
    for (size_t b = 0; b < blocks; ++b) {
      __m256i u[4], o[4];
      for (size_t k = 0; k < 4; ++k) {
        const size_t r = 4 * g + k;
        const bool live = r < nr;
        const uint8_t* blk = w + r * row_bytes + b * bb;
        u[k] = live ? U32<T>(blk) : _mm256_setzero_si256();
        dw[kNr * b + r] = live ? HalfAt(blk) : 0.0f;
        if constexpr (HasMin32(T)) mw[kNr * b + r] = live ? HalfAt(blk + 2) : 0.0f;
      }
      Transpose4(u, o);
      Store4(o, g, panel + b * kPanelBlock);
    }
  }
}

// f[r][0..1] + bias into out[r * ldo + c] for c < nc.
template <size_t R>
HWY_INLINE void StoreTile(const __m256 (*f)[2], const float* bias, size_t nc, float* out,
                          size_t ldo) {
  alignas(32) float bv[kNr] = {};
  if (bias) std::memcpy(bv, bias, nc * sizeof(float));
  const __m256 b0 = _mm256_load_ps(bv), b1 = _mm256_load_ps(bv + 8);
  for (size_t r = 0; r < R; ++r) {
    alignas(32) float t[kNr];
    _mm256_store_ps(t, _mm256_add_ps(f[r][0], b0));
    _mm256_store_ps(t + 8, _mm256_add_ps(f[r][1], b1));
    std::memcpy(out + r * ldo, t, nc * sizeof(float));
  }
}

template <QType T, size_t R>
HWY_INLINE void GemmTile(const uint8_t* HWY_RESTRICT panel, const float* dw, const float* mw,
                         size_t blocks, const XRow* xr, const float* bias, size_t nc, float* out,
                         size_t ldo) {
  __m256 f[R][2];
  for (size_t r = 0; r < R; ++r) f[r][0] = f[r][1] = _mm256_setzero_ps();
  for (size_t b = 0; b < blocks; ++b) {
    __m256i s[R][2];
    for (size_t r = 0; r < R; ++r) {
      s[r][0] = s[r][1] =
          HasMin32(T) ? _mm256_setzero_si256() : _mm256_set1_epi32(xr[r].nsum8[8 * b]);
    }
    const uint8_t* pb = panel + b * kPanelBlock;
    for (size_t j = 0; j < 8; ++j) {
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + 64 * j));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + 64 * j + 32));
      for (size_t r = 0; r < R; ++r) {
        int32_t xv;
        std::memcpy(&xv, xr[r].q + 32 * b + 4 * j, 4);
        const __m256i xb = _mm256_set1_epi32(xv);
        s[r][0] = DotU8I8(s[r][0], w0, xb);
        s[r][1] = DotU8I8(s[r][1], w1, xb);
      }
    }
    const __m256 d0 = _mm256_load_ps(dw + kNr * b), d1 = _mm256_load_ps(dw + kNr * b + 8);
    for (size_t r = 0; r < R; ++r) {
      const __m256 dx = _mm256_set1_ps(xr[r].d[b]);
      f[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[r][0]), _mm256_mul_ps(d0, dx), f[r][0]);
      f[r][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[r][1]), _mm256_mul_ps(d1, dx), f[r][1]);
      if constexpr (HasMin32(T)) {
        const __m256 ds = _mm256_set1_ps(xr[r].ds[b]);
        f[r][0] = _mm256_fmadd_ps(_mm256_load_ps(mw + kNr * b), ds, f[r][0]);
        f[r][1] = _mm256_fmadd_ps(_mm256_load_ps(mw + kNr * b + 8), ds, f[r][1]);
      }
    }
  }
  StoreTile<R>(f, bias, nc, out, ldo);
}

// ---- K-quants (Q4_K, Q5_K, Q6_K) --------------------------------------------------------------
// isum_b = sum_g sc_g * sum(u q_x) over the groups (32 values, 16 for Q6_K), Q6_K's offset 32 taken
// off as -32 * sum_g sc_g * xsum_g; Q4_K / Q5_K add aux_b = sum_j m_j * xsum_j as a second term.

// The K panel of 16 weight rows, per block: u (256 values: byte 64 j + 4 r + i is value 4 j + i
// of row r), sc (per group, 16 rows' scales: int32 for Q4_K / Q5_K, applied to the group's sums
// by mullo; int16 pairs (sc, sc) for Q6_K, madd's second operand, which applies them per 4
// values: faster for its 16-value groups, slower for the 32-value ones, measured), pr (8 x 16
// int16 pairs: Q4_K / Q5_K (m_k, m_k), Q6_K (-32 sc_2k, -32 sc_2k+1), against x's 16-value
// sums), dw, mw (16 floats each).
struct KPanel {
  uint8_t* u;
  int32_t* sc;
  int32_t* pr;
  float* dw;
  float* mw;
};
constexpr size_t kKU = 64 * 64;  // panel bytes per block: 64 dwords x 16 rows

HWY_INLINE int32_t Pair16(int32_t v) {  // v (|v| < 2^15) in both int16 halves
  return int32_t(uint32_t(uint16_t(int16_t(v))) | uint32_t(uint16_t(int16_t(v))) << 16);
}

template <QType T>
HWY_INLINE void PackK(const uint8_t* HWY_RESTRICT w, size_t row_bytes, size_t nr, size_t blocks,
                      const KPanel& pn) {
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
          for (size_t i = 0; i < 16; ++i) sc[i * kNr] = Pair16(s[i]);
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
      for (size_t jj = 0; jj < 8; ++jj) {  // values 32 jj .. 32 jj + 31: dwords 8 jj .. 8 jj + 7
        const __m256i v[4] = {u[0][jj], u[1][jj], u[2][jj], u[3][jj]};
        __m256i o[4];
        Transpose4(v, o);
        Store4(o, g, pn.u + b * kKU + 8 * jj * 64);
      }
    }
  }
}

template <QType T, size_t R>
HWY_INLINE void GemmTileK(const KPanel& pn, size_t blocks, const XRow* xr, const float* bias,
                          size_t nc, float* out, size_t ldo) {
  constexpr size_t G = KGroups(T), kDw = 64 / G;  // dwords of 4 values per group
  __m256 f[R][2];
  for (size_t r = 0; r < R; ++r) f[r][0] = f[r][1] = _mm256_setzero_ps();
  for (size_t b = 0; b < blocks; ++b) {
    __m256i s[R][2];
    for (size_t r = 0; r < R; ++r) s[r][0] = s[r][1] = _mm256_setzero_si256();
    if constexpr (T == QType::kQ6_K) {  // -32 * sum_g sc_g * xsum_g
      for (size_t k = 0; k < 8; ++k) {
        const int32_t* p = pn.pr + (b * 8 + k) * kNr;
        const __m256i p0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
        const __m256i p1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 8));
        for (size_t r = 0; r < R; ++r) {
          int32_t xs;
          std::memcpy(&xs, xr[r].s16 + 16 * b + 2 * k, 4);
          const __m256i xb = _mm256_set1_epi32(xs);
          s[r][0] = _mm256_add_epi32(s[r][0], _mm256_madd_epi16(p0, xb));
          s[r][1] = _mm256_add_epi32(s[r][1], _mm256_madd_epi16(p1, xb));
        }
      }
    }
    const uint8_t* pb = pn.u + b * kKU;
    for (size_t g = 0; g < G && T == QType::kQ6_K; ++g) {
      const int32_t* scp = pn.sc + (b * G + g) * kNr;
      const __m256i sc0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(scp));
      const __m256i sc1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(scp + 8));
      for (size_t jj = 0; jj < kDw; ++jj) {
        const size_t j = g * kDw + jj;
        const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + 64 * j));
        const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + 64 * j + 32));
        for (size_t r = 0; r < R; ++r) {
          int32_t xv;
          std::memcpy(&xv, xr[r].q + 256 * b + 4 * j, 4);
          const __m256i xb = _mm256_set1_epi32(xv);
          s[r][0] =
              _mm256_add_epi32(s[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(w0, xb), sc0));
          s[r][1] =
              _mm256_add_epi32(s[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(w1, xb), sc1));
        }
      }
    }
    for (size_t g = 0; g < G && T != QType::kQ6_K; ++g) {
      __m256i t[R][2];
      for (size_t r = 0; r < R; ++r) t[r][0] = t[r][1] = _mm256_setzero_si256();
      for (size_t jj = 0; jj < kDw; ++jj) {
        const size_t j = g * kDw + jj;
        const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + 64 * j));
        const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + 64 * j + 32));
        for (size_t r = 0; r < R; ++r) {
          int32_t xv;
          std::memcpy(&xv, xr[r].q + 256 * b + 4 * j, 4);
          const __m256i xb = _mm256_set1_epi32(xv);
          t[r][0] = DotU8I8(t[r][0], w0, xb);
          t[r][1] = DotU8I8(t[r][1], w1, xb);
        }
      }
      const int32_t* scp = pn.sc + (b * G + g) * kNr;
      const __m256i sc0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(scp));
      const __m256i sc1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(scp + 8));
      for (size_t r = 0; r < R; ++r) {
        s[r][0] = _mm256_add_epi32(s[r][0], _mm256_mullo_epi32(t[r][0], sc0));
        s[r][1] = _mm256_add_epi32(s[r][1], _mm256_mullo_epi32(t[r][1], sc1));
      }
    }
    const __m256 d0 = _mm256_load_ps(pn.dw + b * kNr), d1 = _mm256_load_ps(pn.dw + b * kNr + 8);
    for (size_t r = 0; r < R; ++r) {
      const __m256 dx = _mm256_set1_ps(xr[r].d[b]);
      f[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[r][0]), _mm256_mul_ps(d0, dx), f[r][0]);
      f[r][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[r][1]), _mm256_mul_ps(d1, dx), f[r][1]);
    }
    if constexpr (HasMinK(T)) {  // aux_b = sum_j m_j * xsum_j
      const __m256 m0 = _mm256_load_ps(pn.mw + b * kNr), m1 = _mm256_load_ps(pn.mw + b * kNr + 8);
      for (size_t r = 0; r < R; ++r) {
        __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
        for (size_t k = 0; k < 8; ++k) {
          int32_t xs;
          std::memcpy(&xs, xr[r].s16 + 16 * b + 2 * k, 4);
          const __m256i xb = _mm256_set1_epi32(xs);
          const int32_t* p = pn.pr + (b * 8 + k) * kNr;
          a0 = _mm256_add_epi32(
              a0, _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(p)), xb));
          a1 = _mm256_add_epi32(
              a1,
              _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(p + 8)), xb));
        }
        const __m256 dx = _mm256_set1_ps(xr[r].d[b]);
        f[r][0] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(a0), _mm256_mul_ps(m0, dx), f[r][0]);
        f[r][1] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(a1), _mm256_mul_ps(m1, dx), f[r][1]);
      }
    }
  }
  StoreTile<R>(f, bias, nc, out, ldo);
}

// ---- the GEMM driver --------------------------------------------------------------------------

template <QType T, size_t kMax>
HWY_INLINE void TileUpTo(size_t R, const uint8_t* panel, const float* dw, const float* mw,
                         const KPanel& pn, size_t blocks, const XRow* xr, const float* bias,
                         size_t nc, float* out, size_t ldo) {
  if constexpr (kMax > 1) {
    if (R < kMax) {
      return TileUpTo<T, kMax - 1>(R, panel, dw, mw, pn, blocks, xr, bias, nc, out, ldo);
    }
  }
  if constexpr (IsK(T)) {
    GemmTileK<T, kMax>(pn, blocks, xr, bias, nc, out, ldo);
  } else {
    GemmTile<T, kMax>(panel, dw, mw, blocks, xr, bias, nc, out, ldo);
  }
}

template <QType T>
HWY_NOINLINE void Gemm(const uint8_t* HWY_RESTRICT w, size_t row_bytes, size_t n, size_t blocks,
                       const XRow* xr, size_t M, const float* bias, float* out, size_t ldo) {
  // This thread's panel, kept between calls.
  static thread_local std::vector<uint8_t> buf;
  constexpr size_t G = KGroups(T);
  const size_t u_bytes = blocks * (IsK(T) ? kKU : kPanelBlock);
  const size_t sc_bytes = IsK(T) ? blocks * G * kNr * 4 : 0;
  const size_t pr_bytes = IsK(T) ? blocks * 8 * kNr * 4 : 0;
  const size_t f_bytes = blocks * kNr * 4;
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
    if constexpr (IsK(T)) {
      PackK<T>(w + n0 * row_bytes, row_bytes, nc, blocks, pn);
    } else {
      Pack<T>(w + n0 * row_bytes, row_bytes, nc, blocks, pn.u, pn.dw, pn.mw);
    }
    for (size_t m0 = 0; m0 < M; m0 += kMr) {
      TileUpTo<T, kMr>(std::min(kMr, M - m0), pn.u, pn.dw, pn.mw, pn, blocks, xr + m0,
                       bias ? bias + n0 : nullptr, nc, out + m0 * ldo + n0, ldo);
    }
  }
}

// ---- M = 1 ------------------------------------------------------------------------------------
// 8 weight rows at a time, each read start to end (one stream): per row and block, the integer
// lanes (and Q4_K / Q5_K's aux lanes) go to an L1 scratch row, the scales to a small array; then
// per block the 8 rows' lanes are reduced together (Reduce8) and the 8 outputs' chains advance.

// One row's block b of a K-quant against x: lanes summing to isum_b (*isum) and aux_b (*aux).
template <QType T>
HWY_INLINE void KLanes(const uint8_t* HWY_RESTRICT blk, const XRow& x, size_t b, __m256i* isum,
                       __m256i* aux) {
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
    *isum = _mm256_sub_epi32(a, _mm256_slli_epi32(_mm256_madd_epi16(s16, sc16), 5));
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
    *isum = a;
    *aux = _mm256_madd_epi16(s16, mv);
  }
}

// Bytes ahead of the weight stream to prefetch (as quant_int8_avx512-inl.h's kPrefetch).
constexpr size_t kPrefetch = 4096;

template <QType T>
HWY_NOINLINE void Matvec8(const uint8_t* HWY_RESTRICT w, size_t row_bytes, size_t n,
                          size_t blocks, const XRow& x, const float* bias, float* out) {
  constexpr size_t bb = BlockBytes(T);
  constexpr bool kK = IsK(T);
  constexpr bool kMin = kK ? HasMinK(T) : HasMin32(T);
  static thread_local std::vector<uint8_t> lanes_tl;  // per block: 8 rows' lanes (and aux's)
  static thread_local std::vector<uint16_t> dh_tl, mh_tl;  // per block: 8 rows' halves
  lanes_tl.resize(2 * blocks * 8 * 32 + 32);
  dh_tl.resize(blocks * 8);
  mh_tl.resize(blocks * 8);
  __m256i* lanes = reinterpret_cast<__m256i*>(
      (reinterpret_cast<uintptr_t>(lanes_tl.data()) + 31) & ~uintptr_t(31));
  __m256i* auxl = lanes + blocks * 8;
  uint16_t* dh = dh_tl.data();
  uint16_t* mh = mh_tl.data();
  for (size_t i0 = 0; i0 < n; i0 += 8) {
    const size_t nr = std::min<size_t>(8, n - i0);
    for (size_t r = 0; r < 8; ++r) {
      if (r >= nr) {  // rows past n: zero lanes, outputs not stored
        for (size_t b = 0; b < blocks; ++b) {
          lanes[b * 8 + r] = _mm256_setzero_si256();
          if (kK && kMin) auxl[b * 8 + r] = _mm256_setzero_si256();
        }
        continue;
      }
      const uint8_t* row = w + (i0 + r) * row_bytes;
      for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * bb;
        if constexpr (kK) {
          for (size_t l = 0; l < bb; l += 64)
            _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetch + l), _MM_HINT_T0);
          __m256i is, ax = _mm256_setzero_si256();
          KLanes<T>(blk, x, b, &is, &ax);
          lanes[b * 8 + r] = is;
          if constexpr (kMin) auxl[b * 8 + r] = ax;
          std::memcpy(dh + 8 * b + r, blk + KScaleAt(T), 2);
          if constexpr (kMin) std::memcpy(mh + 8 * b + r, blk + 2, 2);
        } else {
          if ((b & 1) == 0)
            _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetch), _MM_HINT_T0);
          const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q + 32 * b));
          const __m256i start =
              kMin ? _mm256_setzero_si256()
                   : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.nsum8 + 8 * b));
          lanes[b * 8 + r] = DotU8I8(start, U32<T>(blk), xq);
          std::memcpy(dh + 8 * b + r, blk, 2);
          if constexpr (kMin) std::memcpy(mh + 8 * b + r, blk + 2, 2);
        }
      }
    }
    __m256 acc = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; ++b) {
      const __m256 dw =
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(dh + 8 * b)));
      const __m256 dx = _mm256_set1_ps(x.d[b]);
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Reduce8(lanes + 8 * b)), _mm256_mul_ps(dw, dx),
                            acc);
      if constexpr (kMin) {
        const __m256 mw =
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mh + 8 * b)));
        if constexpr (kK) {
          acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(Reduce8(auxl + 8 * b)), _mm256_mul_ps(mw, dx),
                                 acc);
        } else {
          acc = _mm256_fmadd_ps(mw, _mm256_set1_ps(x.ds[b]), acc);
        }
      }
    }
    alignas(32) float bv[8] = {}, t[8];
    if (bias) std::memcpy(bv, bias + i0, nr * sizeof(float));
    _mm256_store_ps(t, _mm256_add_ps(acc, _mm256_load_ps(bv)));
    std::memcpy(out + i0, t, nr * sizeof(float));
  }
}

// n weight rows against the M rows of x.
template <QType T>
HWY_INLINE void Rows(const uint8_t* w, size_t row_bytes, size_t n, size_t blocks, const XRow* xr,
                     size_t M, const float* bias, float* out, size_t ldo) {
  if (M == 1) return Matvec8<T>(w, row_bytes, n, blocks, xr[0], bias, out);
  Gemm<T>(w, row_bytes, n, blocks, xr, M, bias, out, ldo);
}

}  // namespace avx2
}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX2
#endif  // include guard
