// linear_quantized_int8's lane kernels: a weight row against R (<= 4) rows of x, each block's
// integer sums kept as lanes of 4 values, scaled and added lane-wise, the lanes summed at the end.
// x86 (AVX2, AVX3, AVX3_DL) takes only Q8_0, Q2_K and Q3_K here, decoded in registers 32 bytes
// of u at a time (the other types have whole-block kernels: quant_int8_avx2-inl.h,
// quant_int8_avx512-inl.h); the other targets take every type through quant_int8_blocks-inl.h's
// integer blocks. Also the x86 decoding helpers those files share (HalfAt, FifthBits,
// DecodeQ45_K, DecodeQ6_K).
// Include after hwy/highway.h inside quant_int8.cc's foreach_target loop.

#if defined(GEMMACPP_CPU_QUANT_INT8_LANES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef GEMMACPP_CPU_QUANT_INT8_LANES_INL_H_
#undef GEMMACPP_CPU_QUANT_INT8_LANES_INL_H_
#else
#define GEMMACPP_CPU_QUANT_INT8_LANES_INL_H_
#endif

#include <algorithm>
#include <cstring>

#include "csrc/cpu/quant_int8_blocks-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
using int8::XRow;

#if GC_I8_X86
// Lane sums of u * x (u unsigned, x signed bytes), four products per 32-bit lane.
GC_I8_ATTR HWY_INLINE __m256i DotBytes(__m256i u, __m256i x) {
#if GC_I8_VNNI
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, x);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
#endif
}

#endif

// Rows of x per pass over a weight block: 8 for AVX3_DL's two-block Q8_0 kernel (one 512-bit sum
// per row, in 32 registers), else 4 (16 rows spilled their sums; 8 rows of the 256-bit kernels lost
// to 4, measured on a busy machine).
constexpr size_t RowsPerPass(QType t) { return GC_I8_VNNI && t == QType::kQ8_0 ? 8 : 4; }

// A row's running sums: float32 lanes (x86) and a scalar, each twice (even and odd blocks: two
// independent chains of additions, half the latency per block), added in one fixed order at the
// end.
struct Acc {
#if GC_I8_X86
  __m256 v[2];
#endif
#if GC_I8_VNNI
  __m512 pairs;  // the two-block Q8_0 kernel's lanes
#endif
  float s[2];
};

// Block b of a weight row against rows xr[0 .. R), through the integer block.
template <QType T>
GC_I8_ATTR HWY_INLINE void BlockGeneric(const uint8_t* HWY_RESTRICT blk, size_t b,
                                        const XRow* xr, size_t R, Acc* acc) {
  constexpr size_t bv = BlockValues(T);
  IntBlock o;
  DecodeBlock<T>(blk, o);
  for (size_t r = 0; r < R; ++r) {
    const int32_t isum = ScaledDot<T>(o, xr[r].q + b * bv);
    const int32_t aux = T == QType::kQ8_0 ? 0 : Aux<T>(o.mn, xr[r].s16 + b * bv / 16);
    AddBlock<T>(acc[r].s[b & 1], o.d, o.m, xr[r].d[b], isum, aux);
  }
}

#if GC_I8_X86
// ---- x86: the default model's types decoded in registers ---------------------------------------

// Byte j = 16 where bit j of qh is set, else 0 (the 5-bit types' fifth bit): each byte gets the
// qh byte holding its bit, ORed with a mask that has every bit but that one set.
GC_I8_ATTR HWY_INLINE __m256i FifthBits(uint32_t qh) {
  const __m256i which = _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL,
                                           0x0303030303030303LL);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(int32_t(qh)), which);
  v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfeLL));
  return _mm256_and_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1)), _mm256_set1_epi8(16));
}

GC_I8_ATTR HWY_INLINE float HalfAt(const uint8_t* p) {  // F16C: one instruction
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

GC_I8_ATTR HWY_INLINE float HSumF(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// a.v += float(p) * (d_w * d_x): the block's integer lanes scaled, no horizontal sum per block.
GC_I8_ATTR HWY_INLINE void AddLanes(__m256& v, __m256i p, __m256 vd, const float* dx) {
  v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(vd, _mm256_broadcast_ss(dx)), v);
}

GC_I8_ATTR HWY_INLINE void BlockQ8_0(const uint8_t* HWY_RESTRICT blk, size_t b, const XRow* xr,
                                     size_t R, Acc* acc) {
  const __m256 vd = _mm256_set1_ps(HalfAt(blk));
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  const __m256i aw = _mm256_sign_epi8(w, w);
  for (size_t r = 0; r < R; ++r) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr[r].q + b * 32));
    AddLanes(acc[r].v[b & 1], DotBytes(aw, _mm256_sign_epi8(x, w)), vd, xr[r].d + b);
  }
}

// The 256 unsigned values of a Q4_K / Q5_K block in value order, 32 per vector (sub-block j).
template <bool kFive>
GC_I8_ATTR HWY_INLINE void DecodeQ45_K(const uint8_t* HWY_RESTRICT blk, __m256i* u) {
  const uint8_t* q = blk + (kFive ? 48 : 16);
  const __m256i nib = _mm256_set1_epi8(0xF);
  for (int p = 0; p < 4; ++p) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * p));
    u[2 * p] = _mm256_and_si256(v, nib);
    u[2 * p + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
  }
  if constexpr (kFive) {  // bit j of qh[i]: bit 4 of value i of sub-block j
    const __m256i hv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16));
    const __m256i one = _mm256_set1_epi8(1);
    for (int j = 0; j < 8; ++j) {
      const __m256i bit = _mm256_and_si256(_mm256_srli_epi16(hv, j), one);
      u[j] = _mm256_or_si256(u[j], _mm256_slli_epi16(bit, 4));
    }
  }
}

// The 256 values of a Q6_K block (stored value + 32) in value order, 32 per vector (16-value
// groups 2j and 2j + 1).
GC_I8_ATTR HWY_INLINE void DecodeQ6_K(const uint8_t* HWY_RESTRICT blk, __m256i* u) {
  const uint8_t* ql = blk;
  const uint8_t* qh = blk + 128;
  const __m256i nib = _mm256_set1_epi8(0xF), two = _mm256_set1_epi8(3);
  for (int h = 0; h < 2; ++h) {
    const __m256i la = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h));
    const __m256i lb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h + 32));
    const __m256i hv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + 32 * h));
    const __m256i low[4] = {_mm256_and_si256(la, nib), _mm256_and_si256(lb, nib),
                            _mm256_and_si256(_mm256_srli_epi16(la, 4), nib),
                            _mm256_and_si256(_mm256_srli_epi16(lb, 4), nib)};
    for (int sh = 0; sh < 4; ++sh) {
      const __m256i top = _mm256_and_si256(_mm256_srli_epi16(hv, 2 * sh), two);
      u[4 * h + sh] = _mm256_or_si256(low[sh], _mm256_slli_epi16(top, 4));
    }
  }
}

// The 16-value groups of Q2_K and Q3_K, two per vector as Q6_K's: value i of group 8h + 2s + g
// is bits 2s, 2s + 1 of q[32h + 16g + i]; Q3_K adds 4 where bit 4h + s of hmask[16g + i] is set
// (the stored value then is u - 4).
template <bool kThree>
GC_I8_ATTR HWY_INLINE void BlockQ23_K(const uint8_t* HWY_RESTRICT blk, size_t b, const XRow* xr,
                                      size_t R, Acc* acc) {
  const uint8_t* q = blk + (kThree ? 32 : 16);
  const float d = HalfAt(blk + (kThree ? 108 : 80));
  const __m256 vd = _mm256_set1_ps(d);
  const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
  __m256i u[8];
  const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk));  // Q3_K's hmask
  for (int h = 0; h < 2; ++h) {
    const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * h));
    for (int sh = 0; sh < 4; ++sh) {
      u[4 * h + sh] = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * sh), three);
      if constexpr (kThree) {
        const __m256i bit = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + sh), one);
        u[4 * h + sh] = _mm256_or_si256(u[4 * h + sh], _mm256_slli_epi16(bit, 2));
      }
    }
  }
  // The sixteen scales as bytes, with vector bit operations: a scalar loop over Q3_K's packed
  // 6-bit scales compiled to code twice as slow on AVX3_DL as on AVX3 (measured).
  alignas(16) int8_t sc[16];
  const __m128i low4 = _mm_set1_epi8(0xF);
  if constexpr (kThree) {
    // low 4 bits: nibble i / 8 of byte i % 8; top 2 bits: bit pair i / 4 of byte 8 + i % 4.
    const __m128i lo8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 96));
    const __m128i lo = _mm_unpacklo_epi64(_mm_and_si128(lo8, low4),
                                          _mm_and_si128(_mm_srli_epi16(lo8, 4), low4));
    uint32_t top;
    std::memcpy(&top, blk + 104, 4);
    const __m128i hi = _mm_and_si128(
        _mm_srlv_epi32(_mm_set1_epi32(int32_t(top)), _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3));
    _mm_store_si128(reinterpret_cast<__m128i*>(sc),
                    _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32)));
  } else {
    _mm_store_si128(reinterpret_cast<__m128i*>(sc),
                    _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)), low4));
  }
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(sc)));
  __m256i mins16 = _mm256_setzero_si256();
  if constexpr (!kThree) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk));
    mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0xF)));
  }
  const __m256 vmin = _mm256_set1_ps(kThree ? 0.0f : -HalfAt(blk + 82));
  for (size_t r = 0; r < R; ++r) {
    const int8_t* x = xr[r].q + b * 256;
    const __m256i s16 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr[r].s16 + b * 16));
    __m256i a = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32 * j));
      const __m256i scv =
          _mm256_set_m128i(_mm_set1_epi16(sc[2 * j + 1]), _mm_set1_epi16(sc[2 * j]));
      a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(u[j], xv), scv));
    }
    if constexpr (kThree) {  // the offset 4 of every value: 4 * sc_g * xsum_g, in lanes
      const __m256i aux = _mm256_madd_epi16(s16, sc16);
      AddLanes(acc[r].v[b & 1], _mm256_sub_epi32(a, _mm256_slli_epi32(aux, 2)), vd, xr[r].d + b);
    } else {  // the mins: - dmin * m_g * xsum_g, in lanes
      AddLanes(acc[r].v[b & 1], a, vd, xr[r].d + b);
      AddLanes(acc[r].v[b & 1], _mm256_madd_epi16(s16, mins16), vmin, xr[r].d + b);
    }
  }
}

#if GC_I8_VNNI
// AVX-512 VNNI, Q8_0: two 32-value blocks (b, b + 1) per 512-bit vector, values in order. The head
// of the default model is Q8_0 and a decode step's largest read: these lanes stream it faster than
// the whole-block kernels (quant_int8_avx512-inl.h), whose per-row block scales cost more than
// one broadcast per pair here. vpdpbusd has no 512-bit sign trick, so it multiplies x + 128
// (unsigned) with the signed weights, starting from -128 * (the lanes' sums of w), which one more
// vpdpbusd per weight block gives.

GC_I8_ATTR HWY_INLINE __m512 PairHalves(const uint8_t* a, const uint8_t* b) {  // [d_A x 8, d_B x 8]
  return _mm512_insertf32x8(_mm512_set1_ps(HalfAt(a)), _mm256_set1_ps(HalfAt(b)), 1);
}

GC_I8_ATTR HWY_INLINE void PairQ8_0(const uint8_t* HWY_RESTRICT blk, size_t b, const XRow* xr,
                                    size_t R, Acc* acc) {
  const uint8_t* blk2 = blk + 34;
  const __m512 vdw = PairHalves(blk, blk2);
  const __m512i w = _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk2 + 2)), 1);
  const __m512i wsum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), w);
  const __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(wsum, 7));
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  for (size_t r = 0; r < R; ++r) {
    const __m512i xu = _mm512_xor_si512(_mm512_loadu_si512(xr[r].q + b * 32), flip);  // x + 128
    const __m512i p = _mm512_dpbusd_epi32(start, xu, w);
    // [d_A x 8, d_B x 8] * [d_xA x 8, d_xB x 8]
    const __m512 scale = _mm512_mul_ps(vdw, _mm512_loadu_ps(xr[r].d8 + 8 * b));
    acc[r].pairs = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), scale, acc[r].pairs);
  }
}
#endif  // GC_I8_VNNI

#endif  // GC_I8_X86

template <QType T>
GC_I8_ATTR HWY_INLINE void Block(const uint8_t* HWY_RESTRICT blk, size_t b, const XRow* xr,
                                 size_t R, Acc* acc) {
#if GC_I8_X86
  // x86 runs the other types' whole-block kernels (quant_int8_avx2-inl.h, -avx512-inl.h).
  static_assert(T == QType::kQ8_0 || T == QType::kQ2_K || T == QType::kQ3_K,
                "x86 has no lane kernel for this type");
  if constexpr (T == QType::kQ8_0) return BlockQ8_0(blk, b, xr, R, acc);
  if constexpr (T == QType::kQ2_K) return BlockQ23_K<false>(blk, b, xr, R, acc);
  if constexpr (T == QType::kQ3_K) return BlockQ23_K<true>(blk, b, xr, R, acc);
#else
  BlockGeneric<T>(blk, b, xr, R, acc);
#endif
}

// One weight row against R rows of x (R a compile-time constant, so that the inlined kernels'
// per-row loops unroll and every row's sums stay in registers).
template <QType T, size_t R>
GC_I8_ATTR HWY_INLINE void RowGroup(const uint8_t* HWY_RESTRICT row, size_t blocks,
                                    const XRow* xr, float bias, float* out, size_t ldo) {
  constexpr size_t bb = BlockBytes(T);
  Acc acc[R];
  for (Acc& a : acc) {
#if GC_I8_X86
    a.v[0] = a.v[1] = _mm256_setzero_ps();
#endif
#if GC_I8_VNNI
    a.pairs = _mm512_setzero_ps();
#endif
    a.s[0] = a.s[1] = 0.0f;
  }
  size_t b = 0;
#if GC_I8_VNNI
  if constexpr (T == QType::kQ8_0) {
    for (; b + 2 <= blocks; b += 2) PairQ8_0(row + b * bb, b, xr, R, acc);
  }
#endif
  for (; b < blocks; ++b) Block<T>(row + b * bb, b, xr, R, acc);
  for (size_t r = 0; r < R; ++r) {
#if GC_I8_VNNI
    const __m256 lanes = _mm256_add_ps(
        _mm256_add_ps(acc[r].v[0], acc[r].v[1]),
        _mm256_add_ps(_mm512_castps512_ps256(acc[r].pairs),
                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r].pairs), 1))));
    const float sum = HSumF(lanes) + (acc[r].s[0] + acc[r].s[1]);
#elif GC_I8_X86
    const float sum = HSumF(_mm256_add_ps(acc[r].v[0], acc[r].v[1])) + (acc[r].s[0] + acc[r].s[1]);
#else
    const float sum = acc[r].s[0] + acc[r].s[1];
#endif
    out[r * ldo] = sum + bias;
  }
}

// RowGroup<T, R> for the R (1 .. kMax) given at run time.
template <QType T, size_t kMax>
GC_I8_ATTR HWY_INLINE void RowGroupUpTo(size_t R, const uint8_t* HWY_RESTRICT row, size_t blocks,
                                        const XRow* xr, float bias, float* out, size_t ldo) {
  if constexpr (kMax > 1) {
    if (R < kMax) return RowGroupUpTo<T, kMax - 1>(R, row, blocks, xr, bias, out, ldo);
  }
  RowGroup<T, kMax>(row, blocks, xr, bias, out, ldo);
}

// n weight rows (w: the first, row_bytes apart) against the M rows of x, RowsPerPass(T) at a time.
template <QType T>
GC_I8_ATTR HWY_INLINE void RowsOf(const uint8_t* HWY_RESTRICT w, size_t row_bytes, size_t n,
                                  size_t blocks, const XRow* xr, size_t M, const float* bias,
                                  float* out, size_t ldo) {
  constexpr size_t kRows = RowsPerPass(T);
  for (size_t m0 = 0; m0 < M; m0 += kRows) {
    const size_t R = std::min(kRows, M - m0);
    for (size_t i = 0; i < n; ++i) {
      // + 0.0f when there is no bias changes nothing but a -0 sum into +0.
      const float bi = bias ? bias[i] : 0.0f;
      RowGroupUpTo<T, kRows>(R, w + i * row_bytes, blocks, xr + m0, bi, out + m0 * ldo + i, ldo);
    }
  }
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
