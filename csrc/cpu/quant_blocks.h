// GGML's block-quantized weight formats: their byte layouts and the exact scalar dequantization of
// one block. A quantized row of K values is K / block_values blocks stored back to back; a matrix
// is its rows in order. Layouts and maths follow the GGUF specification (the `gguf` package's
// quants.py is the reference): every float scale is an IEEE half, and the dequantized value is
// computed in float32 in the same operation order as that reference, so results match bitwise.
// Plain C++ (no SIMD): the fast per-target kernels live in quant-inl.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "csrc/core/dtype.h"
#include "csrc/core/qtype.h"

namespace gemmacpp::cpu {

// The type list and block sizes are format facts shared with the file readers (csrc/core/qtype.h).
using gemmacpp::QType;
using gemmacpp::QTypeInfo;
using gemmacpp::qtype_info;
using gemmacpp::kAllQTypes;
using gemmacpp::parse_qtype;
using gemmacpp::supported_qtypes;

namespace quant {

// The IEEE half at p as a float (exact). Inline, unlike f16_to_f32: the kernels read one or two
// per block, and an out-of-line call there would spill every vector accumulator around it.
inline float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float32
    const float f = float(mant) * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  return f32_from_bits(sign | (exp == 31 ? 0x7f800000u | mant << 13
                                         : (exp + 127 - 15) << 23 | mant << 13));
}

// Q4_K / Q5_K pack eight 6-bit scales and eight 6-bit mins into 12 bytes: sub-blocks 0-3 keep
// their low 6 bits in bytes 0-3 (scales) and 4-7 (mins); sub-blocks 4-7 keep their low 4 bits in
// bytes 8-11 and their top 2 bits in the spare top bits of bytes 0-7.
inline void kquant_scale_min(const uint8_t* s, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = uint8_t((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    *m = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// All eight (scale, min) pairs of kquant_scale_min at once, with word-wide bit operations on the
// 12 bytes read as three little-endian u32 A, B, C: scales 0-3 are A's bytes and mins 0-3 B's, each
// masked to 6 bits; scales 4-7 take C's low nibbles with A's top bit pairs above them, mins 4-7
// C's high nibbles with B's top bit pairs. Byte j of the results is pair j.
inline void kquant_scales_mins(const uint8_t* s, uint64_t* scales, uint64_t* mins) {
  uint32_t a, b, c;
  std::memcpy(&a, s, 4);
  std::memcpy(&b, s + 4, 4);
  std::memcpy(&c, s + 8, 4);
  constexpr uint32_t k6 = 0x3F3F3F3Fu, k4 = 0x0F0F0F0Fu, k2 = 0x03030303u;
  const uint32_t sc_hi = (c & k4) | (((a >> 6) & k2) << 4);
  const uint32_t m_hi = ((c >> 4) & k4) | (((b >> 6) & k2) << 4);
  *scales = uint64_t(a & k6) | (uint64_t(sc_hi) << 32);
  *mins = uint64_t(b & k6) | (uint64_t(m_hi) << 32);
}

// Q3_K's sixteen 6-bit signed scales (offset 32) in 12 bytes: low 4 bits in bytes 0-7 (index i
// in byte i % 8, nibble i / 8), top 2 bits in bytes 8-11 (byte 8 + i % 4, bit pair i / 4).
inline int q3k_scale(const uint8_t* s, int i) {
  const int lo = (s[i % 8] >> (4 * (i / 8))) & 0xF;
  const int hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
  return (lo | (hi << 4)) - 32;
}

}  // namespace quant

// Bit 4 of the 5-bit types' values from their packed high bits: row b holds, for each bit i of the
// byte b, 16 or 0 as a 32-bit lane, so that the kernels OR eight values' high bits in with one
// load instead of a variable shift and a mask per vector (8 KiB, L1-resident while in use).
struct Q5HighBitTable {
  alignas(64) int32_t lanes[256][8];
};
constexpr Q5HighBitTable MakeQ5HighBitTable() {
  Q5HighBitTable t{};
  for (int b = 0; b < 256; ++b) {
    for (int i = 0; i < 8; ++i) t.lanes[b][i] = ((b >> i) & 1) * 16;
  }
  return t;
}
inline constexpr Q5HighBitTable kQ5HighBits = MakeQ5HighBitTable();

// One function per type, each writing the block_values floats of the block at b into out. They
// are always inlined, so that code compiled for a SIMD target (quant.cc's tile expansion) gets
// its loops vectorized for that target. Every value is a product that float32 holds exactly (a
// half times a small integer), with at most one rounding after it (the min of Q4_1, Q5_1 and the
// K-quants), so any compilation of these loops, fused multiply-add or not, gives the same bits.
#define GC_BLOCK_FN __attribute__((always_inline)) inline

GC_BLOCK_FN void dequantize_q8_0(const uint8_t* b, float* out) {
  const float d = quant::half_at(b);
  for (int i = 0; i < 32; ++i) out[i] = float(int8_t(b[2 + i])) * d;
}

GC_BLOCK_FN void dequantize_q4_0(const uint8_t* b, float* out) {
  const float d = quant::half_at(b);
  for (int i = 0; i < 16; ++i) {
    out[i] = d * float((b[2 + i] & 0xF) - 8);
    out[16 + i] = d * float((b[2 + i] >> 4) - 8);
  }
}

GC_BLOCK_FN void dequantize_q4_1(const uint8_t* b, float* out) {
  const float d = quant::half_at(b), m = quant::half_at(b + 2);
  for (int i = 0; i < 16; ++i) {
    out[i] = d * float(b[4 + i] & 0xF) + m;
    out[16 + i] = d * float(b[4 + i] >> 4) + m;
  }
}

template <bool kHasMin>
GC_BLOCK_FN void dequantize_q5(const uint8_t* b, float* out) {
  const float d = quant::half_at(b), m = kHasMin ? quant::half_at(b + 2) : 0.0f;
  const uint8_t* p = b + (kHasMin ? 4 : 2);
  uint32_t qh;
  std::memcpy(&qh, p, 4);  // little-endian, as the file
  const uint8_t* q = p + 4;
  int v[32];
  for (int i = 0; i < 16; ++i) {
    v[i] = (q[i] & 0xF) | int((qh >> i) & 1) << 4;
    v[16 + i] = (q[i] >> 4) | int((qh >> (16 + i)) & 1) << 4;
  }
  if (kHasMin) {
    for (int i = 0; i < 32; ++i) out[i] = d * float(v[i]) + m;
  } else {
    for (int i = 0; i < 32; ++i) out[i] = d * float(v[i] - 16);
  }
}
GC_BLOCK_FN void dequantize_q5_0(const uint8_t* b, float* out) { dequantize_q5<false>(b, out); }
GC_BLOCK_FN void dequantize_q5_1(const uint8_t* b, float* out) { dequantize_q5<true>(b, out); }

// The K-quants below walk each 16-value scale group with its scale fixed, in loops the compiler
// vectorizes; the value order is v = 128h + 32s + 16g + i.
GC_BLOCK_FN void dequantize_q2_k(const uint8_t* b, float* out) {
  const uint8_t* sc = b;
  const uint8_t* q = b + 16;
  const float d = quant::half_at(b + 80), dmin = quant::half_at(b + 82);
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      for (int g = 0; g < 2; ++g) {
        const int grp = 8 * h + 2 * s + g;
        const float dl = d * float(sc[grp] & 0xF), ml = dmin * float(sc[grp] >> 4);
        const uint8_t* qg = q + 32 * h + 16 * g;
        float* o = out + 16 * grp;
        for (int i = 0; i < 16; ++i) o[i] = dl * float((qg[i] >> (2 * s)) & 3) - ml;
      }
    }
  }
}

GC_BLOCK_FN void dequantize_q3_k(const uint8_t* b, float* out) {
  const uint8_t* hm = b;
  const uint8_t* q = b + 32;
  const uint8_t* sc = b + 96;
  const float d = quant::half_at(b + 108);
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      const int bit = 4 * h + s;  // hmask bit of values 32 * bit ... + 31
      for (int g = 0; g < 2; ++g) {
        const int grp = 8 * h + 2 * s + g;
        const float dl = d * float(quant::q3k_scale(sc, grp));
        const uint8_t* qg = q + 32 * h + 16 * g;
        const uint8_t* hg = hm + 16 * g;
        float* o = out + 16 * grp;
        for (int i = 0; i < 16; ++i) {
          // A clear hmask bit means "minus 4".
          const int v = ((qg[i] >> (2 * s)) & 3) - (((hg[i] >> bit) & 1) ? 0 : 4);
          o[i] = dl * float(v);
        }
      }
    }
  }
}

template <bool kFive>
GC_BLOCK_FN void dequantize_q45_k(const uint8_t* b, float* out) {
  const float d = quant::half_at(b), dmin = quant::half_at(b + 2);
  const uint8_t* sc = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* q = b + (kFive ? 48 : 16);
  for (int j = 0; j < 8; ++j) {
    uint8_t s, m;
    quant::kquant_scale_min(sc, j, &s, &m);
    const float dl = d * float(s), ml = dmin * float(m);
    const uint8_t* qj = q + 32 * (j / 2);
    for (int i = 0; i < 32; ++i) {
      int v = (j & 1) ? (qj[i] >> 4) : (qj[i] & 0xF);
      if (kFive) v |= ((qh[i] >> j) & 1) << 4;
      out[32 * j + i] = dl * float(v) - ml;
    }
  }
}
GC_BLOCK_FN void dequantize_q4_k(const uint8_t* b, float* out) { dequantize_q45_k<false>(b, out); }
GC_BLOCK_FN void dequantize_q5_k(const uint8_t* b, float* out) { dequantize_q45_k<true>(b, out); }

GC_BLOCK_FN void dequantize_q6_k(const uint8_t* b, float* out) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = quant::half_at(b + 208);
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      for (int g = 0; g < 2; ++g) {
        const int grp = 8 * h + 2 * s + g;
        const float dl = d * float(sc[grp]);
        // low 4 bits: a nibble of ql[64h + 32(s & 1) + i] (high nibble for s >= 2); top 2 bits:
        // bits 2s, 2s+1 of qh[32h + i].
        const uint8_t* lg = ql + 64 * h + 32 * (s & 1) + 16 * g;
        const uint8_t* hg = qh + 32 * h + 16 * g;
        const int shift = 4 * (s >> 1);
        float* o = out + 16 * grp;
        for (int i = 0; i < 16; ++i) {
          const int v = ((lg[i] >> shift) & 0xF) | (((hg[i] >> (2 * s)) & 3) << 4);
          o[i] = dl * float(v - 32);
        }
      }
    }
  }
}

// Calls f(BlockFn<function of type t>{}): code that loops over many blocks switches once, outside
// its loop, and calls decltype(k)::expand(block, out) inside it, a direct call the compiler
// inlines (a function pointer would stay an indirect call).
template <void (*Fn)(const uint8_t*, float*)>
struct BlockFn {
  GC_BLOCK_FN static void expand(const uint8_t* b, float* out) { Fn(b, out); }
};

template <class F>
GC_BLOCK_FN void with_block_fn(QType t, const F& f) {
  switch (t) {
    case QType::kQ8_0: return f(BlockFn<dequantize_q8_0>{});
    case QType::kQ4_0: return f(BlockFn<dequantize_q4_0>{});
    case QType::kQ4_1: return f(BlockFn<dequantize_q4_1>{});
    case QType::kQ5_0: return f(BlockFn<dequantize_q5_0>{});
    case QType::kQ5_1: return f(BlockFn<dequantize_q5_1>{});
    case QType::kQ2_K: return f(BlockFn<dequantize_q2_k>{});
    case QType::kQ3_K: return f(BlockFn<dequantize_q3_k>{});
    case QType::kQ4_K: return f(BlockFn<dequantize_q4_k>{});
    case QType::kQ5_K: return f(BlockFn<dequantize_q5_k>{});
    case QType::kQ6_K: return f(BlockFn<dequantize_q6_k>{});
  }
}

// Writes the block_values floats of the block at b into out.
inline void dequantize_block(QType t, const uint8_t* b, float* out) {
  with_block_fn(t, [&](auto k) { decltype(k)::expand(b, out); });
}

}  // namespace gemmacpp::cpu
