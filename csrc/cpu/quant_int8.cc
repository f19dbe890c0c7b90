// linear_quantized_int8 (arithmetic in quant_int8.h). Every weight block becomes integers: its
// values in unsigned form u (or int8 for Q8_0), a scale per group of 16 or 32 values, and a
// multiplier per group of the group's sum of q_x (the mins of Q4_1/Q5_1/Q2_K/Q4_K/Q5_K; the
// offsets 8, 16, 4 * scale, 32 * scale of the types stored with one). The sums of u * q_x are
// products of an unsigned and a signed byte, which is what x86 multiplies natively: maddubs (AVX2,
// AVX-512 without VNNI) and vpdpbusd (AVX-512 VNNI, the AVX3_DL target). No product overflows:
// u <= 63 except Q8_0, whose signed values take the |w| * sign(x, w) form, and |q_x| <= 127.
// - x86 (AVX2, AVX3, AVX3_DL): every type is decoded in registers, 32 bytes of u at a time;
//   AVX3_DL runs the 32-value types (Q8_0, Q4_0, Q5_0: the 270M's types by bytes) through
//   quant_int8_vnni-inl.h: whole-block integer sums, a register-blocked GEMM for M > 1.
// - other targets (SSE4, SCALAR, NEON, ...): every type is expanded to a 256-byte integer block
//   first, then meets x in plain loops (auto-vectorized): correct, and several times slower
//   than the x86 kernels (a NEON kernel with its dot-product instructions is future work).
// A block is decoded once and applied to up to four rows of x with the same operations per row;
// its integer sums are exact, so row m's float32 terms are the same numbers whatever M.
#include "csrc/cpu/quant_int8.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "csrc/core/threads.h"
#include "csrc/cpu/gemm_tiling.h"

#ifndef GEMMACPP_CPU_QUANT_INT8_ROW_
#define GEMMACPP_CPU_QUANT_INT8_ROW_
namespace gemmacpp::cpu::int8 {
// One row of x rounded to int8: K values, one scale per activation block, one sum per 16 values.
struct XRow {
  const int8_t* q;
  const float* d;
  const int16_t* s16;
  const float* ds;  // 32-value blocks: d * (the block's sum of q), for the mins and offsets
  const float* d8;  // 32-value blocks: d eight times (a vector load of two blocks' scales)
  // 32-value blocks: -offset * (the block's sum of q), then seven zeros, where offset is what the
  // kernels subtract from the weights' unsigned values (8 for Q4_0, 16 for Q5_0, 128 for Q8_0 on
  // AVX3_DL, which multiplies w + 128; else 0: unused).
  const int32_t* nsum8;
};
}  // namespace gemmacpp::cpu::int8
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/quant_int8.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using int8::XRow;

#undef GC_I8_X86
#undef GC_I8_VNNI
#undef GC_I8_ATTR
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define GC_I8_X86 1
#else
#define GC_I8_X86 0
#endif
// Highway 1.0.3 compiles AVX3_DL with the VEX AVX-VNNI extension, which Ice Lake and Zen 4 lack;
// its run-time check asks for AVX512-VNNI, whose EVEX vpdpbusd these functions use, so they add
// that extension to the target's own list.
#if HWY_TARGET == HWY_AVX3_DL
#define GC_I8_VNNI 1
#define GC_I8_ATTR __attribute__((target(HWY_TARGET_STR ",avx512vnni")))
#else
#define GC_I8_VNNI 0
#define GC_I8_ATTR
#endif

// ---- x to int8 ----------------------------------------------------------------------------------

// K values of x into q, d (one per bs values) and s16 (one per 16). Any NaN or infinity in a block
// makes its scale NaN, so that the outputs it feeds are NaN as on the exact path.
GC_I8_ATTR void QuantizeRow(const float* HWY_RESTRICT x, size_t K, size_t bs,
                            int8_t* HWY_RESTRICT q, float* HWY_RESTRICT d,
                            int16_t* HWY_RESTRICT s16, float* HWY_RESTRICT ds,
                            float* HWY_RESTRICT d8, int32_t* HWY_RESTRICT nsum8,
                            int32_t offset) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const size_t L = hn::Lanes(df);
  HWY_ALIGN int32_t v[256 + 64];
  for (size_t b0 = 0; b0 < K; b0 += bs) {
    auto vmax = hn::Zero(df), probe = hn::Zero(df);
    for (size_t i = 0; i < bs; i += L) {
      const auto xi = hn::LoadU(df, x + b0 + i);
      vmax = hn::Max(vmax, hn::Abs(xi));
      probe = hn::Add(probe, hn::Mul(xi, hn::Zero(df)));  // NaN iff a value is not finite
    }
    const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    const bool finite = hn::GetLane(hn::SumOfLanes(df, probe)) == 0.0f;
    const float id = finite && amax > 0.0f ? 127.0f / amax : 0.0f;
    d[b0 / bs] = finite ? amax / 127.0f : std::numeric_limits<float>::quiet_NaN();
    const auto vid = hn::Set(df, id);
    for (size_t i = 0; i < bs; i += L) {
      const auto r = hn::Round(hn::Mul(hn::LoadU(df, x + b0 + i), vid));
      hn::Store(hn::ConvertTo(di, r), di, v + i);
    }
    for (size_t g = 0; g < bs; g += 16) {
      int32_t s = 0;
      for (size_t i = g; i < g + 16; ++i) {
        const int32_t c = std::clamp(v[i], -127, 127);
        q[b0 + i] = int8_t(c);
        s += c;
      }
      s16[(b0 + g) / 16] = int16_t(s);
    }
    if (bs == 32) {
      ds[b0 / 32] = d[b0 / 32] * float(int32_t(s16[b0 / 16]) + s16[b0 / 16 + 1]);
      for (size_t i = 0; i < 8; ++i) d8[b0 / 4 + i] = d[b0 / 32];
      nsum8[b0 / 4] = -offset * (int32_t(s16[b0 / 16]) + s16[b0 / 16 + 1]);
      for (size_t i = 1; i < 8; ++i) nsum8[b0 / 4 + i] = 0;
    }
  }
}

// ---- weight blocks as integers (every target) ----------------------------------------------------

// One weight block: u (unsigned values; Q8_0's int8 bits), per group a scale sc and a multiplier
// mn of the group's sum of q_x. The block contributes d * d_x * isum + m * d_x * aux, where
// isum = sum_g sc_g * sum(u q_x) (minus aux for the types with an offset, whose m is 0) and
// aux = sum_g mn_g * xsum_g.
struct IntBlock {
  alignas(32) uint8_t u[256];
  int32_t sc[16];
  int32_t mn[16];
  float d, m;
};

constexpr bool IsKQuant(QType t) {
  return t == QType::kQ2_K || t == QType::kQ3_K || t == QType::kQ4_K || t == QType::kQ5_K ||
         t == QType::kQ6_K;
}
constexpr int BlockValues(QType t) { return IsKQuant(t) ? 256 : 32; }
constexpr int BlockBytes(QType t) {  // as qtype_info (csrc/core/qtype.h), at compile time
  switch (t) {
    case QType::kQ8_0: return 34;
    case QType::kQ4_0: return 18;
    case QType::kQ4_1: return 20;
    case QType::kQ5_0: return 22;
    case QType::kQ5_1: return 24;
    case QType::kQ2_K: return 84;
    case QType::kQ3_K: return 110;
    case QType::kQ4_K: return 144;
    case QType::kQ5_K: return 176;
    case QType::kQ6_K: return 210;
  }
  return 1;
}

// Group length (16 or 32) and whether aux is folded into isum, per type.
constexpr int GroupLen(QType t) {
  return t == QType::kQ2_K || t == QType::kQ3_K || t == QType::kQ6_K ? 16 : 32;
}
constexpr bool HasMin(QType t) {
  return t == QType::kQ4_1 || t == QType::kQ5_1 || t == QType::kQ2_K || t == QType::kQ4_K ||
         t == QType::kQ5_K;
}

template <QType T>
HWY_INLINE void DecodeBlock(const uint8_t* HWY_RESTRICT b, IntBlock& o) {
  if constexpr (T == QType::kQ8_0) {
    o.d = quant::half_at(b);
    o.m = 0.0f;
    std::memcpy(o.u, b + 2, 32);
    o.sc[0] = 1;
    o.mn[0] = 0;
  } else if constexpr (T == QType::kQ4_0 || T == QType::kQ4_1 || T == QType::kQ5_0 ||
                       T == QType::kQ5_1) {
    constexpr bool kMin = T == QType::kQ4_1 || T == QType::kQ5_1;
    constexpr bool kFive = T == QType::kQ5_0 || T == QType::kQ5_1;
    o.d = quant::half_at(b);
    o.m = kMin ? quant::half_at(b + 2) : 0.0f;
    const uint8_t* p = b + (kMin ? 4 : 2);
    uint32_t qh = 0;
    if (kFive) std::memcpy(&qh, p, 4);
    const uint8_t* q = p + (kFive ? 4 : 0);
    for (int i = 0; i < 16; ++i) {
      o.u[i] = uint8_t((q[i] & 0xF) | (kFive ? ((qh >> i) & 1) << 4 : 0));
      o.u[16 + i] = uint8_t((q[i] >> 4) | (kFive ? ((qh >> (16 + i)) & 1) << 4 : 0));
    }
    o.sc[0] = 1;
    o.mn[0] = kMin ? 1 : (kFive ? 16 : 8);
  } else if constexpr (T == QType::kQ2_K) {
    const uint8_t* s = b;
    const uint8_t* q = b + 16;
    o.d = quant::half_at(b + 80);
    o.m = -quant::half_at(b + 82);
    for (int h = 0; h < 2; ++h)
      for (int sh = 0; sh < 4; ++sh)
        for (int g = 0; g < 2; ++g) {
          const int grp = 8 * h + 2 * sh + g;
          for (int i = 0; i < 16; ++i) o.u[16 * grp + i] = (q[32 * h + 16 * g + i] >> (2 * sh)) & 3;
          o.sc[grp] = s[grp] & 0xF;
          o.mn[grp] = s[grp] >> 4;
        }
  } else if constexpr (T == QType::kQ3_K) {
    const uint8_t* hm = b;
    const uint8_t* q = b + 32;
    o.d = quant::half_at(b + 108);
    o.m = 0.0f;
    for (int h = 0; h < 2; ++h)
      for (int sh = 0; sh < 4; ++sh)
        for (int g = 0; g < 2; ++g) {
          const int grp = 8 * h + 2 * sh + g, bit = 4 * h + sh;
          // value + 4: the low two bits, plus 4 where the hmask bit is set
          for (int i = 0; i < 16; ++i)
            o.u[16 * grp + i] = uint8_t(((q[32 * h + 16 * g + i] >> (2 * sh)) & 3) |
                                        (((hm[16 * g + i] >> bit) & 1) << 2));
          o.sc[grp] = quant::q3k_scale(b + 96, grp);
          o.mn[grp] = 4 * o.sc[grp];
        }
  } else if constexpr (T == QType::kQ4_K || T == QType::kQ5_K) {
    constexpr bool kFive = T == QType::kQ5_K;
    o.d = quant::half_at(b);
    o.m = -quant::half_at(b + 2);
    const uint8_t* qh = b + 16;
    const uint8_t* q = b + (kFive ? 48 : 16);
    for (int j = 0; j < 8; ++j) {
      uint8_t s, mn;
      quant::kquant_scale_min(b + 4, j, &s, &mn);
      o.sc[j] = s;
      o.mn[j] = mn;
      const uint8_t* qj = q + 32 * (j / 2);
      for (int i = 0; i < 32; ++i) {
        int v = (j & 1) ? (qj[i] >> 4) : (qj[i] & 0xF);
        if (kFive) v |= ((qh[i] >> j) & 1) << 4;
        o.u[32 * j + i] = uint8_t(v);
      }
    }
  } else {  // Q6_K
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* s = reinterpret_cast<const int8_t*>(b + 192);
    o.d = quant::half_at(b + 208);
    o.m = 0.0f;
    for (int h = 0; h < 2; ++h)
      for (int sh = 0; sh < 4; ++sh)
        for (int g = 0; g < 2; ++g) {
          const int grp = 8 * h + 2 * sh + g;
          const uint8_t* lg = ql + 64 * h + 32 * (sh & 1) + 16 * g;
          const uint8_t* hg = qh + 32 * h + 16 * g;
          for (int i = 0; i < 16; ++i)
            o.u[16 * grp + i] = uint8_t(((lg[i] >> (4 * (sh >> 1))) & 0xF) |
                                        (((hg[i] >> (2 * sh)) & 3) << 4));
          o.sc[grp] = s[grp];
          o.mn[grp] = 32 * s[grp];
        }
  }
}

#if GC_I8_X86
GC_I8_ATTR HWY_INLINE int32_t HSum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// Lane sums of u * x (u unsigned, x signed bytes), four products per 32-bit lane.
GC_I8_ATTR HWY_INLINE __m256i DotBytes(__m256i u, __m256i x) {
#if GC_I8_VNNI
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, x);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
#endif
}

#endif

// sum_g sc_g * sum_{i in g} u_i q_i over bv values in groups of glen (Q8_0: signed u). The
// portable targets' path (x86 decodes every type in registers, below).
template <QType T>
GC_I8_ATTR HWY_INLINE int32_t ScaledDot(const IntBlock& o, const int8_t* HWY_RESTRICT xq) {
  constexpr int bv = BlockValues(T), glen = GroupLen(T);
  int32_t total = 0;
  for (int g = 0; g < bv / glen; ++g) {
    int32_t s = 0;
    if constexpr (T == QType::kQ8_0) {
      for (int i = 0; i < glen; ++i) s += int32_t(int8_t(o.u[i])) * int32_t(xq[i]);
    } else {
      for (int i = g * glen; i < (g + 1) * glen; ++i) s += int32_t(o.u[i]) * int32_t(xq[i]);
    }
    total += o.sc[g] * s;
  }
  return total;
}

// The sums of q_x over block b's groups (glen 16 or 32), weighted by mn.
template <QType T>
HWY_INLINE int32_t Aux(const int32_t* mn, const int16_t* HWY_RESTRICT s16) {
  constexpr int bv = BlockValues(T), glen = GroupLen(T);
  int32_t aux = 0;
  for (int g = 0; g < bv / glen; ++g) {
    const int32_t xs = glen == 16 ? s16[g] : s16[2 * g] + s16[2 * g + 1];
    aux += mn[g] * xs;
  }
  return aux;
}

// The float32 terms of one block for one row, in a fixed order.
template <QType T>
HWY_INLINE void AddBlock(float& acc, float d, float m, float dx, int32_t isum, int32_t aux) {
  if constexpr (HasMin(T)) {
    acc += (d * dx) * float(isum);
    acc += (m * dx) * float(aux);
  } else {
    acc += (d * dx) * float(isum - aux);
  }
}

// Rows of x per pass over a weight block. Measured on a busy machine: 8 rows of the 256-bit
// K-quant kernels (two sums per row, eight decoded vectors) lost to 4 at M = 8 and 512.
constexpr size_t kRowsPerPass = 4;

// A row's running sums: float32 lanes (x86) and a scalar, each twice (even and odd blocks: two
// independent chains of additions, half the latency per block), added in one fixed order at the
// end.
struct Acc {
#if GC_I8_X86
  __m256 v[2];
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

// Q4_0, Q5_0 (kMin false: the offset 8 or 16) and Q4_1, Q5_1 (a min m: + m * d_x * sum(q_x)).
template <bool kFive, bool kMin = false>
GC_I8_ATTR HWY_INLINE void BlockQ4Q5_0(const uint8_t* HWY_RESTRICT blk, size_t b, const XRow* xr,
                                       size_t R, Acc* acc) {
  const float d = HalfAt(blk);
  const __m256 vd = _mm256_set1_ps(d);
  constexpr size_t kQh = kMin ? 4 : 2;
  const uint8_t* q = blk + kQh + (kFive ? 4 : 0);
  const __m128i q16 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  const __m128i lo = _mm_and_si128(q16, _mm_set1_epi8(0xF));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(q16, 4), _mm_set1_epi8(0xF));
  __m256i u = _mm256_set_m128i(hi, lo);
  if (kFive) {
    uint32_t qh;
    std::memcpy(&qh, blk + kQh, 4);
    u = _mm256_or_si256(u, FifthBits(qh));
  }
  if constexpr (kMin) {
    const float m = HalfAt(blk + 2);
    for (size_t r = 0; r < R; ++r) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr[r].q + b * 32));
      AddLanes(acc[r].v[b & 1], DotBytes(u, x), vd, xr[r].d + b);
      acc[r].s[b & 1] += m * xr[r].ds[b];
    }
    return;
  }
  // The offset -8 or -16 of every value: -(sum of q_x) * 8 or 16 added to the first lane.
  for (size_t r = 0; r < R; ++r) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr[r].q + b * 32));
    const __m256i off = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr[r].nsum8 + 8 * b));
    AddLanes(acc[r].v[b & 1], _mm256_add_epi32(DotBytes(u, x), off), vd, xr[r].d + b);
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

template <bool kFive>
GC_I8_ATTR HWY_INLINE void BlockQ45_K(const uint8_t* HWY_RESTRICT blk, size_t b, const XRow* xr,
                                      size_t R, Acc* acc) {
  const float d = HalfAt(blk), dmin = HalfAt(blk + 2);
  const __m256 vd = _mm256_set1_ps(d);
  uint64_t scales, mins;
  quant::kquant_scales_mins(blk + 4, &scales, &mins);
  __m256i u[8];
  DecodeQ45_K<kFive>(blk, u);
  const __m256 vmin = _mm256_set1_ps(-dmin);
  const __m128i m8 = _mm_cvtsi64_si128(int64_t(mins));
  const __m256i mv = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m0 m0 m1 m1 ... m7 m7
  for (size_t r = 0; r < R; ++r) {
    const int8_t* x = xr[r].q + b * 256;
    const int16_t* s16 = xr[r].s16 + b * 16;
    __m256i a = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32 * j));
      const __m256i sc = _mm256_set1_epi16(int16_t((scales >> (8 * j)) & 0xFF));
      a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(u[j], xv), sc));
    }
    // The mins against the sums of q_x, as lanes: m_j * (xsum_2j + xsum_2j+1) in lane j.
    const __m256i aux = _mm256_madd_epi16(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s16)), mv);
    AddLanes(acc[r].v[b & 1], a, vd, xr[r].d + b);
    AddLanes(acc[r].v[b & 1], aux, vmin, xr[r].d + b);
  }
}

GC_I8_ATTR HWY_INLINE void BlockQ6_K(const uint8_t* HWY_RESTRICT blk, size_t b, const XRow* xr,
                                     size_t R, Acc* acc) {
  const int8_t* s = reinterpret_cast<const int8_t*>(blk + 192);
  const float d = HalfAt(blk + 208);
  const __m256 vd = _mm256_set1_ps(d);
  __m256i u[8];
  DecodeQ6_K(blk, u);
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
  for (size_t r = 0; r < R; ++r) {
    const int8_t* x = xr[r].q + b * 256;
    const int16_t* s16 = xr[r].s16 + b * 16;
    __m256i a = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32 * j));
      const __m256i sc = _mm256_set_m128i(_mm_set1_epi16(s[2 * j + 1]), _mm_set1_epi16(s[2 * j]));
      a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(u[j], xv), sc));
    }
    // The offset 32 of every value, through the sums of q_x: 32 * sc_g * xsum_g, in lanes.
    const __m256i aux = _mm256_madd_epi16(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s16)), sc16);
    AddLanes(acc[r].v[b & 1], _mm256_sub_epi32(a, _mm256_slli_epi32(aux, 5)), vd, xr[r].d + b);
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

#endif  // GC_I8_X86

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#include "csrc/cpu/quant_int8_vnni-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

template <QType T>
GC_I8_ATTR HWY_INLINE void Block(const uint8_t* HWY_RESTRICT blk, size_t b, const XRow* xr,
                                 size_t R, Acc* acc) {
#if GC_I8_X86
  if constexpr (T == QType::kQ8_0) return BlockQ8_0(blk, b, xr, R, acc);
  if constexpr (T == QType::kQ4_0) return BlockQ4Q5_0<false>(blk, b, xr, R, acc);
  if constexpr (T == QType::kQ5_0) return BlockQ4Q5_0<true>(blk, b, xr, R, acc);
  if constexpr (T == QType::kQ4_1) return BlockQ4Q5_0<false, true>(blk, b, xr, R, acc);
  if constexpr (T == QType::kQ5_1) return BlockQ4Q5_0<true, true>(blk, b, xr, R, acc);
  if constexpr (T == QType::kQ2_K) return BlockQ23_K<false>(blk, b, xr, R, acc);
  if constexpr (T == QType::kQ3_K) return BlockQ23_K<true>(blk, b, xr, R, acc);
  if constexpr (T == QType::kQ4_K) return BlockQ45_K<false>(blk, b, xr, R, acc);
  if constexpr (T == QType::kQ5_K) return BlockQ45_K<true>(blk, b, xr, R, acc);
  if constexpr (T == QType::kQ6_K) return BlockQ6_K(blk, b, xr, R, acc);
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
    a.s[0] = a.s[1] = 0.0f;
  }
  size_t b = 0;
  for (; b < blocks; ++b) Block<T>(row + b * bb, b, xr, R, acc);
  for (size_t r = 0; r < R; ++r) {
#if GC_I8_X86
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

// n weight rows (w: the first, row_bytes apart) against the M rows of x, kRowsPerPass at a time.
template <QType T>
GC_I8_ATTR HWY_INLINE void RowsOf(const uint8_t* HWY_RESTRICT w, size_t row_bytes, size_t n,
                                  size_t blocks, const XRow* xr, size_t M, const float* bias,
                                  float* out, size_t ldo) {
  constexpr size_t kRows = kRowsPerPass;
  for (size_t m0 = 0; m0 < M; m0 += kRows) {
    const size_t R = std::min(kRows, M - m0);
    for (size_t i = 0; i < n; ++i) {
      // + 0.0f when there is no bias changes nothing but a -0 sum into +0.
      const float bi = bias ? bias[i] : 0.0f;
      RowGroupUpTo<T, kRows>(R, w + i * row_bytes, blocks, xr + m0, bi, out + m0 * ldo + i, ldo);
    }
  }
}

GC_I8_ATTR void LinearRows(QType t, const uint8_t* w, size_t row_bytes, size_t n, size_t blocks,
                           const XRow* xr, size_t M, const float* bias, float* out, size_t ldo) {
  switch (t) {
#if GC_I8_VNNI
#define GC_I8_CASE(T)                                                         \
  case T:                                                                     \
    if constexpr (vnni::Handles(T)) {                                         \
      return vnni::Rows<T>(w, row_bytes, n, blocks, xr, M, bias, out, ldo);   \
    } else {                                                                  \
      return RowsOf<T>(w, row_bytes, n, blocks, xr, M, bias, out, ldo);       \
    }
#else
#define GC_I8_CASE(T) \
  case T: return RowsOf<T>(w, row_bytes, n, blocks, xr, M, bias, out, ldo);
#endif
    GC_I8_CASE(QType::kQ8_0)
    GC_I8_CASE(QType::kQ4_0)
    GC_I8_CASE(QType::kQ4_1)
    GC_I8_CASE(QType::kQ5_0)
    GC_I8_CASE(QType::kQ5_1)
    GC_I8_CASE(QType::kQ2_K)
    GC_I8_CASE(QType::kQ3_K)
    GC_I8_CASE(QType::kQ4_K)
    GC_I8_CASE(QType::kQ5_K)
    GC_I8_CASE(QType::kQ6_K)
#undef GC_I8_CASE
  }
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(QuantizeRow);
HWY_EXPORT(LinearRows);

int int8_activation_block(QType t) { return qtype_info(t).block_values == 256 ? 256 : 32; }

void linear_quantized_int8(const float* x, int64_t ldx, int64_t M, int64_t K, QType t,
                           const uint8_t* w, int64_t N, const float* bias, float* out,
                           int64_t ldo, int64_t stride_bytes) {
  if (M <= 0 || N <= 0) return;
  const QTypeInfo info = qtype_info(t);
  const int64_t bs = int8_activation_block(t), blocks = K / info.block_values;
  const int64_t row_bytes = stride_bytes ? stride_bytes : blocks * info.block_bytes;
  // Per-thread buffers, kept between calls (a decode step makes hundreds of these calls).
  // The lambdas below run on other threads: they must see this thread's buffers through these
  // references, never name a thread_local themselves.
  static thread_local std::vector<int8_t> q_tl;
  static thread_local std::vector<float> d_tl, ds_tl, d8_tl;
  static thread_local std::vector<int16_t> s16_tl;
  static thread_local std::vector<int32_t> nsum8_tl;
  static thread_local std::vector<int8::XRow> rows_tl;
  std::vector<int8_t>& q = q_tl;
  std::vector<float>& d = d_tl;
  std::vector<float>& ds = ds_tl;
  std::vector<float>& d8 = d8_tl;
  std::vector<int16_t>& s16 = s16_tl;
  std::vector<int32_t>& nsum8 = nsum8_tl;
  std::vector<int8::XRow>& rows = rows_tl;
  q.resize(size_t(M * K));
  d.resize(size_t(M * (K / bs)));
  ds.resize(size_t(M * (K / 32)));
  d8.resize(size_t(M * (K / 4)));
  nsum8.resize(size_t(M * (K / 4)));
  s16.resize(size_t(M * (K / 16)));
  rows.resize(size_t(M));
  const int32_t offset =
      t == QType::kQ8_0 ? 128 : t == QType::kQ4_0 ? 8 : t == QType::kQ5_0 ? 16 : 0;
  const auto quantize = [&](int64_t m0, int64_t len) {
    for (int64_t m = m0; m < m0 + len; ++m) {
      int8::XRow& r = rows[size_t(m)];
      r = {q.data() + m * K, d.data() + m * (K / bs), s16.data() + m * (K / 16),
           ds.data() + m * (K / 32), d8.data() + m * (K / 4), nsum8.data() + m * (K / 4)};
      HWY_DYNAMIC_DISPATCH(QuantizeRow)(x + m * ldx, size_t(K), size_t(bs),
                                        const_cast<int8_t*>(r.q), const_cast<float*>(r.d),
                                        const_cast<int16_t*>(r.s16), const_cast<float*>(r.ds),
                                        const_cast<float*>(r.d8),
                                        const_cast<int32_t*>(r.nsum8), offset);
    }
  };
  if (M < 16) {
    quantize(0, M);  // a parallel region costs more than these few rows
  } else {
    parallel_chunks(M, 8, quantize);
  }
  gemm::for_each_matvec_block(N, row_bytes, [&](int64_t n0, int64_t nb) {
    HWY_DYNAMIC_DISPATCH(LinearRows)(t, w + n0 * row_bytes, size_t(row_bytes), size_t(nb),
                                     size_t(blocks), rows.data(), size_t(M),
                                     bias ? bias + n0 : nullptr, out + n0, size_t(ldo));
  });
}

}  // namespace gemmacpp::cpu
#endif
