// linear_quantized_int8's portable part: the per-target switches (GC_I8_X86, GC_I8_VNNI,
// GC_I8_ATTR), the weight types' traits, and every block decoded into plain integers (IntBlock:
// unsigned values, per-group scales and multipliers of x's group sums) with scalar dot products,
// which the non-x86 targets run (quant_int8_lanes-inl.h's BlockGeneric).
// Include after hwy/highway.h inside quant_int8.cc's foreach_target loop.

#if defined(GEMMACPP_CPU_QUANT_INT8_BLOCKS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef GEMMACPP_CPU_QUANT_INT8_BLOCKS_INL_H_
#undef GEMMACPP_CPU_QUANT_INT8_BLOCKS_INL_H_
#else
#define GEMMACPP_CPU_QUANT_INT8_BLOCKS_INL_H_
#endif

#include <cstdint>
#include <cstring>

#include "csrc/cpu/quant_blocks.h"
#include "csrc/cpu/quant_int8_row.h"
#include "hwy/highway.h"

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

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

// ---- weight blocks as integers (every target) ---------------------------------------------------

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

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
