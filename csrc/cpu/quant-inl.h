// Per-target dot products of R rows of float32 x with C rows of block-quantized weights, for
// linear_quantized (its only path, any M). Each weight block is decoded in registers, a chunk of
// 32 values at a time, into its float32 values w (bitwise quant_blocks.h's dequantized values:
// d * q, d * q + m and dl * q - ml are formed with the scalar code's single rounding),
// and each (row of x, weight row) pair accumulates w * x in two accumulator vectors (even and
// odd vectors of k), summed by one SumOfLanes at the end (gemm-inl.h's StoreSumsOfLanes: on
// AVX-512 four pairs' sums at a time, bitwise the same). The decoded chunk is shared by the R
// rows and each x vector by the C weight rows, but every pair gets exactly the operations it
// would get alone (R = C = 1): a row's result does not depend on R, C, the other rows or
// M. With more rows than one tile (quant.cc), the weight rows are decoded once into float32 rows
// and DecodedDotTile runs the same two accumulators over them as two passes. Q2_K, Q3_K and Q6_K
// stage their small integers as int8 in a 256-byte L1 buffer per row first (the bit fiddling on
// whole byte vectors). Vectors are kept in arrays (no
// sizeless targets are compiled; see CMakeLists.txt).
// Include after hwy/highway.h inside a foreach_target translation unit.

#if defined(GEMMACPP_CPU_QUANT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef GEMMACPP_CPU_QUANT_INL_H_
#undef GEMMACPP_CPU_QUANT_INL_H_
#else
#define GEMMACPP_CPU_QUANT_INL_H_
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "csrc/cpu/gemm-inl.h"  // StoreSumsOfLanes
#include "csrc/cpu/quant_blocks.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The K-quant and Q8_0 kernels take chunks of Lanes values inside a 16-value scale group (Q6_K)
// and pairs of chunks inside a 32-value block: vectors of up to 16 float lanes.
HWY_INLINE bool QuantKernelsFit() { return hn::Lanes(hn::ScalableTag<float>()) <= 16; }

// Lanes bytes from p, each widened to a 32-bit integer lane.
template <class DI>
HWY_INLINE hn::Vec<DI> LoadU8AsI32(DI di, const uint8_t* p) {
  return hn::PromoteTo(di, hn::LoadU(hn::Rebind<uint8_t, DI>(), p));
}

// The IEEE half at p, converted in vector registers (F16C where the target has it) and broadcast
// to every lane: a few instructions instead of a scalar decode with branches, which for 32-value
// blocks was a third of the kernel's instructions. On AVX-512 one half is converted in a 128-bit
// register and the float broadcast: converting a broadcast 16-lane vector costs more there, and
// it ran in every block (measured on an EPYC, one thread: Q8_0 matrix-vector 31 -> 38 GB/s,
// Q5_0 +4%; on AVX2 either way gave the same speed).
template <class DF>
HWY_INLINE hn::Vec<DF> BroadcastHalf(DF df, const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  const hn::Full128<float> d4;
  const hn::Rebind<uint16_t, decltype(d4)> du16;
  const hn::Rebind<hwy::float16_t, decltype(d4)> dh;
  return hn::Set(df, hn::GetLane(hn::PromoteTo(d4, hn::BitCast(dh, hn::Set(du16, h)))));
#else
  const hn::Rebind<uint16_t, DF> du16;
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(df, hn::BitCast(dh, hn::Set(du16, h)));
#endif
}


// Bit 4 (as 16 or 0) of the 5-bit types' values j .. j + Lanes - 1 (Lanes <= 8, not crossing a
// multiple of 8), from the table row of the byte of qh holding their high bits.
template <class DI>
HWY_INLINE hn::Vec<DI> Q5HighBits(DI di, uint32_t qh, size_t j) {
  return hn::LoadU(di, kQ5HighBits.lanes[(qh >> (j & ~size_t(7))) & 0xFF] + (j & 7));
}

// ---- block decoders: Begin(blk) once per block, Chunk(s, w) the values 32s .. 32s + 31 -----------
// (kV = 32 / Lanes vectors, in value order).

template <class DF>
constexpr size_t ChunkVectors() {
  return 32 / hn::MaxLanes(DF());
}

// Q8_0: w = d * q, q int8.
template <class DF>
struct DecodeQ8_0 {
  static constexpr size_t kValues = 32, kBytes = 34;
  const uint8_t* blk;
  HWY_INLINE void Begin(const uint8_t* b) { blk = b; }
  template <class V>
  HWY_INLINE void Chunk(size_t /*s*/, V* w) const {
    const DF df;
    const hn::RebindToSigned<DF> di;
    const hn::Rebind<int8_t, decltype(di)> d8;
    constexpr size_t kL = hn::MaxLanes(df);
    const V vd = BroadcastHalf(df, blk);
    const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2);
    for (size_t v = 0; v < ChunkVectors<DF>(); ++v) {
      w[v] = hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, q + v * kL))), vd);
    }
  }
};

// Q4_0, Q4_1, Q5_0, Q5_1: blocks of 32 values; value i < 16 is the low nibble of q[i], value
// 16 + i its high nibble; the 5-bit types add bit j of a little-endian u32 as bit 4 of value j.
// w = d * (q - 8) or d * (q - 16) for the signed types, d * q + m for Q4_1 and Q5_1. On 16 lanes
// (AVX-512) the high bits of a half-block are one mask-register load; narrower vectors take a row
// of the Q5HighBits table per 8 values.
template <class DF, bool kFiveBit, bool kMin>
struct DecodeQ4Q5 {
  static constexpr size_t kQh = kMin ? 4 : 2, kQ = kQh + (kFiveBit ? 4 : 0);
  static constexpr size_t kValues = 32, kBytes = kQ + 16;
  const uint8_t* blk;
  HWY_INLINE void Begin(const uint8_t* b) { blk = b; }
  template <class V>
  HWY_INLINE void Chunk(size_t /*s*/, V* w) const {
    const DF df;
    const hn::RebindToSigned<DF> di;
    constexpr size_t kL = hn::MaxLanes(df), kHalf = 16 / kL > 0 ? 16 / kL : 1;
    const V vd = BroadcastHalf(df, blk);
    const V vm = kMin ? BroadcastHalf(df, blk + 2) : vd;
    const auto mask = hn::Set(di, 0xF), offset = hn::Set(di, kFiveBit ? 16 : 8);
    uint32_t qh = 0;
    if (kFiveBit) std::memcpy(&qh, blk + kQh, 4);
    const uint8_t* q = blk + kQ;
    for (size_t v = 0; v < kHalf; ++v) {
      const auto u = LoadU8AsI32(di, q + v * kL);
      auto lo = hn::And(u, mask), hi = hn::ShiftRight<4>(u);
      if (kFiveBit) {
        if constexpr (kL == 16) {
          const auto bit4 = hn::Set(di, 16);
          lo = hn::IfThenElse(hn::LoadMaskBits(di, blk + kQh), hn::Or(lo, bit4), lo);
          hi = hn::IfThenElse(hn::LoadMaskBits(di, blk + kQh + 2), hn::Or(hi, bit4), hi);
        } else {
          lo = hn::Or(lo, Q5HighBits(di, qh, v * kL));
          hi = hn::Or(hi, Q5HighBits(di, qh, 16 + v * kL));
        }
      }
      if (kMin) {
        w[v] = hn::MulAdd(hn::ConvertTo(df, lo), vd, vm);
        w[kHalf + v] = hn::MulAdd(hn::ConvertTo(df, hi), vd, vm);
      } else {
        w[v] = hn::Mul(hn::ConvertTo(df, hn::Sub(lo, offset)), vd);
        w[kHalf + v] = hn::Mul(hn::ConvertTo(df, hn::Sub(hi, offset)), vd);
      }
    }
  }
};

// Q4_K and Q5_K: super-blocks of 256 values in 8 sub-blocks of 32, w = (d * sc_j) * q - dmin * m_j
// with q 4-bit (Q4_K) or 5-bit (Q5_K: bit 4 of value 32j + i is bit j of qh[i]). Sub-blocks 2p
// and 2p+1 share the 32 bytes q[32p..]: low nibbles for 2p, high for 2p+1. The eight scales and
// mins are unpacked together and turned into floats as vectors once per block.
template <class DF, bool kFiveBit>
struct DecodeQ45_K {
  static constexpr size_t kValues = 256, kBytes = kFiveBit ? 176 : 144;
  const uint8_t* blk;
  HWY_ALIGN float scale[8];
  HWY_ALIGN float minv[8];
  HWY_INLINE void Begin(const uint8_t* b) {
    blk = b;
    const hn::CappedTag<float, 8> d8;
    const hn::RebindToSigned<decltype(d8)> di8;
    HWY_ALIGN uint8_t packed[16];  // bytes 0-7: the scales, 8-15: the mins
    uint64_t sc8, m8;
    quant::kquant_scales_mins(b + 4, &sc8, &m8);
    std::memcpy(packed, &sc8, 8);
    std::memcpy(packed + 8, &m8, 8);
    const auto d = BroadcastHalf(d8, b), dmin = BroadcastHalf(d8, b + 2);
    for (size_t j = 0; j < 8; j += hn::Lanes(d8)) {
      hn::Store(hn::Mul(hn::ConvertTo(d8, LoadU8AsI32(di8, packed + j)), d), d8, scale + j);
      hn::Store(hn::Mul(hn::ConvertTo(d8, LoadU8AsI32(di8, packed + 8 + j)), dmin), d8, minv + j);
    }
  }
  template <class V>
  HWY_INLINE void Chunk(size_t j, V* w) const {
    const DF df;
    const hn::RebindToSigned<DF> di;
    constexpr size_t kL = hn::MaxLanes(df);
    const auto mask = hn::Set(di, 0xF), one = hn::Set(di, 1);
    const V dl = hn::Set(df, scale[j]), ml = hn::Set(df, minv[j]);
    const uint8_t* qj = blk + (kFiveBit ? 48 : 16) + 32 * (j / 2);
    const uint8_t* qh = blk + 16;
    for (size_t v = 0; v < ChunkVectors<DF>(); ++v) {
      const auto u = LoadU8AsI32(di, qj + v * kL);
      auto n = (j & 1) ? hn::ShiftRight<4>(u) : hn::And(u, mask);
      if (kFiveBit) {
        const auto hb = hn::And(hn::ShiftRightSame(LoadU8AsI32(di, qh + v * kL), int(j)), one);
        n = hn::Or(n, hn::ShiftLeft<4>(hb));
      }
      w[v] = hn::MulSub(hn::ConvertTo(df, n), dl, ml);
    }
  }
};

// The K-quants staged as int8 (Q2_K, Q3_K, Q6_K): Begin writes the block's 16 group scales (and
// for Q2_K the 16 group mins) as floats and its 256 values as int8 to L1 buffers; Chunk converts
// them: w = scale_G * q (- min_G).
template <class DF, bool kMins>
struct DecodeStaged {
  HWY_ALIGN float scale[16];
  HWY_ALIGN float mscale[16];
  HWY_ALIGN int8_t qv[256];
  template <class V>
  HWY_INLINE void Chunk(size_t s, V* w) const {
    const DF df;
    const hn::RebindToSigned<DF> di;
    const hn::Rebind<int8_t, decltype(di)> d8;
    constexpr size_t kL = hn::MaxLanes(df);
    for (size_t v = 0; v < ChunkVectors<DF>(); ++v) {
      const size_t i = 32 * s + v * kL;
      const V qf = hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, qv + i)));
      if (kMins) {
        w[v] = hn::MulSub(qf, hn::Set(df, scale[i / 16]), hn::Set(df, mscale[i / 16]));
      } else {
        w[v] = hn::Mul(qf, hn::Set(df, scale[i / 16]));
      }
    }
  }
};

// Q2_K: super-blocks of 256 values, w = (d * (sc[G] & 15)) * q - dmin * (sc[G] >> 4) for 16-value
// group G, q 2-bit: value v = 128h + 32s + i is bits 2s, 2s+1 of q[32h + i].
template <class DF>
struct DecodeQ2_K : DecodeStaged<DF, true> {
  static constexpr size_t kValues = 256, kBytes = 84;
  HWY_INLINE void Begin(const uint8_t* blk) {
    const hn::CappedTag<uint8_t, 32> du8;
    const auto mask2 = hn::Set(du8, 3);
    uint8_t* qb = reinterpret_cast<uint8_t*>(this->qv);
    for (size_t h = 0; h < 2; ++h) {
      for (size_t i = 0; i < 32; i += hn::Lanes(du8)) {
        const auto Q = hn::LoadU(du8, blk + 16 + 32 * h + i);
        uint8_t* o = qb + 128 * h + i;
        hn::StoreU(hn::And(Q, mask2), du8, o);
        hn::StoreU(hn::And(hn::ShiftRight<2>(Q), mask2), du8, o + 32);
        hn::StoreU(hn::And(hn::ShiftRight<4>(Q), mask2), du8, o + 64);
        hn::StoreU(hn::ShiftRight<6>(Q), du8, o + 96);
      }
    }
    const float d = quant::half_at(blk + 80), dmin = quant::half_at(blk + 82);
    for (size_t g = 0; g < 16; ++g) {
      this->scale[g] = d * float(blk[g] & 0xF);
      this->mscale[g] = dmin * float(blk[g] >> 4);
    }
  }
};

// Q3_K: super-blocks of 256 values, w = (d * scale_G) * q with 6-bit signed scales (see
// quant_blocks.h) and q = (bits 2s, 2s+1 of q[32h + i]) - (bit 4h + s of hmask[i] ? 0 : 4) for
// v = 128h + 32s + i.
template <class DF>
struct DecodeQ3_K : DecodeStaged<DF, false> {
  static constexpr size_t kValues = 256, kBytes = 110;
  HWY_INLINE void Begin(const uint8_t* blk) {
    const hn::CappedTag<uint8_t, 32> du8;
    const auto mask2 = hn::Set(du8, 3), one = hn::Set(du8, 1), four = hn::Set(du8, 4);
    uint8_t* qb = reinterpret_cast<uint8_t*>(this->qv);
    const float d = quant::half_at(blk + 108);
    for (int g = 0; g < 16; ++g) this->scale[g] = d * float(quant::q3k_scale(blk + 96, g));
    for (size_t i = 0; i < 32; i += hn::Lanes(du8)) {
      const auto HM = hn::LoadU(du8, blk + i);
      for (int h = 0; h < 2; ++h) {
        const auto Q = hn::LoadU(du8, blk + 32 + 32 * h + i);
        for (int s = 0; s < 4; ++s) {
          // lo + 4 * bit - 4: the int8 value of q, wrapping below zero.
          const auto lo = hn::And(hn::ShiftRightSame(Q, 2 * s), mask2);
          const auto hb = hn::And(hn::ShiftRightSame(HM, 4 * h + s), one);
          hn::StoreU(hn::Sub(hn::Or(lo, hn::ShiftLeft<2>(hb)), four), du8,
                     qb + 128 * h + 32 * s + i);
        }
      }
    }
  }
};

// Q6_K: super-blocks of 256 values, w = (d * sc[v / 16]) * (q - 32) with q 6-bit: for value
// v = 128h + 32s + i, the low 4 bits are a nibble of ql[64h + 32(s & 1) + i] (high nibble when
// s >= 2) and the top 2 bits are bits 2s, 2s+1 of qh[32h + i]; q - 32 is staged as int8.
template <class DF>
struct DecodeQ6_K : DecodeStaged<DF, false> {
  static constexpr size_t kValues = 256, kBytes = 210;
  HWY_INLINE void Begin(const uint8_t* blk) {
    const hn::CappedTag<uint8_t, 32> du8;
    const auto mask4 = hn::Set(du8, 0x0F), mask30 = hn::Set(du8, 0x30), off = hn::Set(du8, 32);
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
    const float d = quant::half_at(blk + 208);
    for (size_t g = 0; g < 16; ++g) this->scale[g] = d * float(sc[g]);
    uint8_t* qb = reinterpret_cast<uint8_t*>(this->qv);
    for (size_t h = 0; h < 2; ++h) {
      const uint8_t* ql = blk + 64 * h;
      const uint8_t* qh = blk + 128 + 32 * h;
      uint8_t* o = qb + 128 * h;
      for (size_t i = 0; i < 32; i += hn::Lanes(du8)) {
        const auto A = hn::LoadU(du8, ql + i), B = hn::LoadU(du8, ql + 32 + i);
        const auto H = hn::LoadU(du8, qh + i);
        // The top 2 bits moved straight to bit positions 4-5, masked once; q - 32 wraps to the
        // int8 value.
        const auto q0 = hn::Or(hn::And(A, mask4), hn::And(hn::ShiftLeft<4>(H), mask30));
        const auto q1 = hn::Or(hn::And(B, mask4), hn::And(hn::ShiftLeft<2>(H), mask30));
        const auto q2 = hn::Or(hn::ShiftRight<4>(A), hn::And(H, mask30));
        const auto q3 = hn::Or(hn::ShiftRight<4>(B), hn::And(hn::ShiftRight<2>(H), mask30));
        hn::StoreU(hn::Sub(q0, off), du8, o + i);
        hn::StoreU(hn::Sub(q1, off), du8, o + 32 + i);
        hn::StoreU(hn::Sub(q2, off), du8, o + 64 + i);
        hn::StoreU(hn::Sub(q3, off), du8, o + 96 + i);
      }
    }
  }
};

// One of DecodedDotTile's two passes: acc[r][c] = the FMA chain, from zero, over the vectors at
// k = start, start + 2 Lanes, ... of x_r and w_c.
template <size_t R, size_t C, class DF>
HWY_INLINE void DecodedDotPass(DF df, const float* HWY_RESTRICT x, size_t ldx,
                               const float* const* wc, size_t start, size_t K,
                               hn::Vec<DF> (&acc)[R][C]) {
  using V = hn::Vec<DF>;
  constexpr size_t kL = hn::MaxLanes(df);
  for (size_t r = 0; r < R; ++r) {
    for (size_t c = 0; c < C; ++c) acc[r][c] = hn::Zero(df);
  }
  for (size_t k = start; k < K; k += 2 * kL) {
    V xv[R];
    for (size_t r = 0; r < R; ++r) xv[r] = hn::LoadU(df, x + r * ldx + k);
    for (size_t c = 0; c < C; ++c) {
      const V wv = hn::Load(df, wc[c] + k);
      for (size_t r = 0; r < R; ++r) acc[r][c] = hn::MulAdd(wv, xv[r], acc[r][c]);
    }
  }
}

// QuantDotTile's sums over rows already decoded into float32 (DecodeRow: K floats each, ldw
// apart, aligned; K a multiple of 2 * Lanes). Its two accumulators a (even vectors of k) and b
// (odd) are independent chains, so they run one after the other, each as a one-accumulator
// R x C tile (R * C registers where the two at once take 2 R C: 4 x 4 on AVX-512, with R + C
// loads per R * C FMAs); a is parked in L1 while b runs, then SumOfLanes(a + b) as there. (The
// two passes are written out, not a loop over them: in a loop GCC could not see that the first
// pass fills `parked` before the second reads it, and warned.)
template <size_t R, size_t C>
HWY_INLINE void DecodedDotTile(const float* HWY_RESTRICT x, size_t ldx, const float* HWY_RESTRICT w,
                               size_t ldw, size_t cols, size_t K, float* HWY_RESTRICT out,
                               size_t ldo) {
  const hn::ScalableTag<float> df;
  using V = hn::Vec<decltype(df)>;
  constexpr size_t kL = hn::MaxLanes(df);
  const float* wc[C];
  for (size_t c = 0; c < C; ++c) wc[c] = w + (c < cols ? c : cols - 1) * ldw;
  HWY_ALIGN float parked[R * C * kL];
  V acc[R][C];
  DecodedDotPass<R, C>(df, x, ldx, wc, 0, K, acc);
  for (size_t r = 0; r < R; ++r) {
    for (size_t c = 0; c < C; ++c) hn::Store(acc[r][c], df, parked + (r * C + c) * kL);
  }
  DecodedDotPass<R, C>(df, x, ldx, wc, kL, K, acc);
  for (size_t r = 0; r < R; ++r) {
    V sum[C];
    for (size_t c = 0; c < C; ++c) sum[c] = hn::Add(hn::Load(df, parked + (r * C + c) * kL), acc[r][c]);
    StoreSumsOfLanes<C>(df, sum, cols, out + r * ldo);
  }
}

// Decodes `blocks` blocks of one weight row into out (aligned): the values the tile's Chunk gives.
template <template <class> class Decode>
HWY_INLINE void DecodeRow(const uint8_t* HWY_RESTRICT row, size_t blocks, float* HWY_RESTRICT out) {
  using DF = hn::ScalableTag<float>;
  using Dec = Decode<DF>;
  const DF df;
  constexpr size_t kL = hn::MaxLanes(df), kV = ChunkVectors<DF>();
  Dec dec;
  for (size_t b = 0; b < blocks; ++b) {
    dec.Begin(row + b * Dec::kBytes);
    for (size_t s = 0; s < Dec::kValues / 32; ++s) {
      hn::Vec<DF> wv[kV];
      dec.Chunk(s, wv);
      float* o = out + b * Dec::kValues + 32 * s;
      for (size_t v = 0; v < kV; ++v) hn::Store(wv[v], df, o + v * kL);
    }
  }
}

// ---- the tile ------------------------------------------------------------------------------------

// out[r * ldo + c] = sum_k x_r[k] * W_c[k] for R rows of x (ldx apart) and the first `cols` of C
// weight rows of `blocks` blocks each (w at the first, row_bytes apart; a short group repeats its
// last row, whose duplicate results are not stored). Accumulators a[r][c] (even vectors of k)
// and b[r][c] (odd), reduced as SumOfLanes(a + b).
//
// ahead (or null): the start of C * blocks * kBytes bytes to prefetch (the weight rows of a later
// tile), spread over the block loop, each cache line once, in step with the tile's own reading.
template <size_t R, size_t C, template <class> class Decode>
HWY_INLINE void QuantDotTile(const float* HWY_RESTRICT x, size_t ldx, const uint8_t* HWY_RESTRICT w,
                             size_t row_bytes, size_t cols, size_t blocks, float* HWY_RESTRICT out,
                             size_t ldo, const uint8_t* ahead = nullptr) {
  using DF = hn::ScalableTag<float>;
  using Dec = Decode<DF>;
  const DF df;
  using V = hn::Vec<DF>;
  constexpr size_t kL = hn::MaxLanes(df), kV = ChunkVectors<DF>();
  static_assert(kV % 2 == 0, "chunks of an even number of vectors");
  constexpr size_t kChunks = Dec::kValues / 32;
  const uint8_t* wc[C];
  for (size_t c = 0; c < C; ++c) wc[c] = w + (c < cols ? c : cols - 1) * row_bytes;
  Dec dec[C];
  V a[R][C], b[R][C];
  for (size_t r = 0; r < R; ++r) {
    for (size_t c = 0; c < C; ++c) a[r][c] = b[r][c] = hn::Zero(df);
  }
  const uint8_t* prefetched = ahead;
  for (size_t blk = 0; blk < blocks; ++blk) {
    if (ahead) {
      for (const uint8_t* until = ahead + (blk + 1) * C * Dec::kBytes; prefetched < until;
           prefetched += 64) {
        hwy::Prefetch(prefetched);
      }
    }
    for (size_t c = 0; c < C; ++c) dec[c].Begin(wc[c] + blk * Dec::kBytes);
    for (size_t s = 0; s < kChunks; ++s) {
      V wv[C][kV];
      for (size_t c = 0; c < C; ++c) dec[c].Chunk(s, wv[c]);
      const float* xs = x + blk * Dec::kValues + 32 * s;
      for (size_t v = 0; v < kV; v += 2) {
        for (size_t r = 0; r < R; ++r) {
          const V xa = hn::LoadU(df, xs + r * ldx + v * kL);
          const V xb = hn::LoadU(df, xs + r * ldx + (v + 1) * kL);
          for (size_t c = 0; c < C; ++c) {
            a[r][c] = hn::MulAdd(wv[c][v], xa, a[r][c]);
            b[r][c] = hn::MulAdd(wv[c][v + 1], xb, b[r][c]);
          }
        }
      }
    }
  }
  for (size_t r = 0; r < R; ++r) {
    for (size_t c = 0; c < C; ++c) a[r][c] = hn::Add(a[r][c], b[r][c]);
    StoreSumsOfLanes<C>(df, a[r], cols, out + r * ldo);
  }
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
