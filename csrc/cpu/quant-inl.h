// Per-target dot products of a float32 vector with one row of block-quantized weights, for the
// matrix-vector path of linear: each weight block is read once, its integers widened to 32-bit
// lanes, converted to float32 in registers and multiplied with x into float32 accumulators; the
// expanded weights are never stored (Q2_K, Q3_K and Q6_K stage their small integers as int8 in a
// 256-byte L1 buffer). Scales are applied once per block or group to the sum of q * x, and
// mins/offsets through sums of x. Accumulation order depends only on K. Every kernel takes
// (x, xsum, w, blocks): xsum holds the sums of x over each 32 values.
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

#include "hwy/highway.h"
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

// Q8_0: w = d * q, q int8. Each block's sum of q * x is formed first (its own short chain, which
// the next block's does not wait for), then scaled by d into accumulator a0 (even blocks) or a1.
HWY_INLINE float DotQ8_0(const float* HWY_RESTRICT x, const float* /*xsum*/,
                         const uint8_t* HWY_RESTRICT w, size_t blocks) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(di)> d8;
  const size_t L = hn::Lanes(df);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df);
  const auto block_sum = [&](const uint8_t* b, const float* xb) {
    const int8_t* q = reinterpret_cast<const int8_t*>(b + 2);
    auto p = hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, q))), hn::LoadU(df, xb));
    for (size_t i = L; i < 32; i += L) {
      p = hn::MulAdd(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, q + i))),
                     hn::LoadU(df, xb + i), p);
    }
    return p;
  };
  size_t b = 0;
  for (; b + 2 <= blocks; b += 2) {
    const uint8_t* b0 = w + b * 34;
    const uint8_t* b1 = b0 + 34;
    a0 = hn::MulAdd(block_sum(b0, x + b * 32), BroadcastHalf(df, b0), a0);
    a1 = hn::MulAdd(block_sum(b1, x + b * 32 + 32), BroadcastHalf(df, b1), a1);
  }
  if (b < blocks) {
    a0 = hn::MulAdd(block_sum(w + b * 34, x + b * 32), BroadcastHalf(df, w + b * 34), a0);
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
}

// Bit 4 (as 16 or 0) of the 5-bit types' values j .. j + Lanes - 1 (Lanes <= 8, not crossing a
// multiple of 8), from the table row of the byte of qh holding their high bits.
template <class DI>
HWY_INLINE hn::Vec<DI> Q5HighBits(DI di, uint32_t qh, size_t j) {
  return hn::LoadU(di, kQ5HighBits.lanes[(qh >> (j & ~size_t(7))) & 0xFF] + (j & 7));
}

// Q4_0, Q4_1, Q5_0, Q5_1: blocks of 32 values; value i < 16 is the low nibble of q[i], value
// 16 + i its high nibble; the 5-bit types add bit j of a little-endian u32 as bit 4 of value j.
// w = d * q + off, with off = m (a min) or -8d / -16d (the offset of the signed types), so a block
// contributes d * sum(q x) + off * xsum_b: one scale per block instead of one per value.
// DotQ4Q5 takes vectors of up to 8 lanes (DF, a CappedTag on wider targets): each half-block is
// walked in chunks of Lanes.
template <class DF, bool kFiveBit, bool kMin>
HWY_INLINE float DotQ4Q5(const float* HWY_RESTRICT x, const float* HWY_RESTRICT xsum,
                         const uint8_t* HWY_RESTRICT w, size_t blocks) {
  const DF df;
  const hn::RebindToSigned<decltype(df)> di;
  const size_t L = hn::Lanes(df);
  constexpr size_t kQh = kMin ? 4 : 2, kQ = kQh + (kFiveBit ? 4 : 0);
  constexpr size_t kBytes = kQ + 16;
  const auto mask = hn::Set(di, 0xF);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df);
  auto offsets = hn::Zero(df);  // sum of off * xsum_b (d * xsum_b for the signed types), every lane
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = w + b * kBytes;
    const float* xb = x + b * 32;
    const auto vd = BroadcastHalf(df, blk);
    // The signed types' offset -8d or -16d is applied once at the end (a power of two: exact).
    const auto off = kMin ? BroadcastHalf(df, blk + 2) : vd;
    uint32_t qh = 0;
    if (kFiveBit) std::memcpy(&qh, blk + kQh, 4);
    const uint8_t* q = blk + kQ;
    auto p0 = hn::Zero(df), p1 = hn::Zero(df);
    for (size_t i = 0; i < 16; i += 2 * L) {
      const auto v0 = LoadU8AsI32(di, q + i), v1 = LoadU8AsI32(di, q + i + L);
      auto n0 = hn::And(v0, mask), n1 = hn::And(v1, mask);
      auto h0 = hn::ShiftRight<4>(v0), h1 = hn::ShiftRight<4>(v1);
      if (kFiveBit) {
        n0 = hn::Or(n0, Q5HighBits(di, qh, i));
        n1 = hn::Or(n1, Q5HighBits(di, qh, i + L));
        h0 = hn::Or(h0, Q5HighBits(di, qh, 16 + i));
        h1 = hn::Or(h1, Q5HighBits(di, qh, 16 + i + L));
      }
      p0 = hn::MulAdd(hn::ConvertTo(df, n0), hn::LoadU(df, xb + i), p0);
      p1 = hn::MulAdd(hn::ConvertTo(df, n1), hn::LoadU(df, xb + i + L), p1);
      p0 = hn::MulAdd(hn::ConvertTo(df, h0), hn::LoadU(df, xb + 16 + i), p0);
      p1 = hn::MulAdd(hn::ConvertTo(df, h1), hn::LoadU(df, xb + 16 + i + L), p1);
    }
    if (b & 1) {
      a1 = hn::MulAdd(hn::Add(p0, p1), vd, a1);
    } else {
      a0 = hn::MulAdd(hn::Add(p0, p1), vd, a0);
    }
    offsets = hn::MulAdd(off, hn::Set(df, xsum[b]), offsets);
  }
  const float offset_scale = kMin ? 1.0f : (kFiveBit ? -16.0f : -8.0f);
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1))) + offset_scale * hn::GetLane(offsets);
}

// Expansion into float32 rows for the GEMM path (quant.cc's tiles): the same values as
// quant_blocks.h's scalar functions, bit for bit (each is a product float32 holds exactly, plus at
// most a min added after it), with the block's integers decoded in vectors as the dot products
// above decode them. The scalar loops, even compiled for this target, decode Q5_0's bit fields a
// value at a time: a third of a 32-token prefill of the default model.
template <class DF>
HWY_INLINE void ExpandQ8_0(const uint8_t* HWY_RESTRICT blk, float* HWY_RESTRICT out) {
  const DF df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(di)> d8;
  const auto vd = BroadcastHalf(df, blk);
  const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2);
  for (size_t i = 0; i < 32; i += hn::Lanes(df)) {
    hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, q + i))), vd), df, out + i);
  }
}

// Q4_0, Q4_1, Q5_0, Q5_1 (layouts as DotQ4Q5); DF of at most 8 lanes (the high-bit table's rows).
template <class DF, bool kFiveBit, bool kMin>
HWY_INLINE void ExpandQ4Q5(const uint8_t* HWY_RESTRICT blk, float* HWY_RESTRICT out) {
  const DF df;
  const hn::RebindToSigned<decltype(df)> di;
  const size_t L = hn::Lanes(df);
  constexpr size_t kQh = kMin ? 4 : 2, kQ = kQh + (kFiveBit ? 4 : 0);
  const auto mask = hn::Set(di, 0xF);
  const auto offset = hn::Set(di, kMin ? 0 : (kFiveBit ? 16 : 8));
  const auto vd = BroadcastHalf(df, blk);
  const auto vm = kMin ? BroadcastHalf(df, blk + 2) : hn::Zero(df);
  uint32_t qh = 0;
  if (kFiveBit) std::memcpy(&qh, blk + kQh, 4);
  const auto value = [&](hn::Vec<decltype(di)> q) {
    return kMin ? hn::Add(hn::Mul(vd, hn::ConvertTo(df, q)), vm)
                : hn::Mul(vd, hn::ConvertTo(df, hn::Sub(q, offset)));
  };
  const uint8_t* q = blk + kQ;
  for (size_t i = 0; i < 16; i += L) {
    const auto v = LoadU8AsI32(di, q + i);
    auto lo = hn::And(v, mask), hi = hn::ShiftRight<4>(v);
    if (kFiveBit) {
      lo = hn::Or(lo, Q5HighBits(di, qh, i));
      hi = hn::Or(hi, Q5HighBits(di, qh, 16 + i));
    }
    hn::StoreU(value(lo), df, out + i);
    hn::StoreU(value(hi), df, out + 16 + i);
  }
}

// Q4_K and Q5_K (layout as DotQ45_K): sub-block j's 32 values are dl_j * q - ml_j.
template <class DF, bool kFiveBit>
HWY_INLINE void ExpandQ45_K(const uint8_t* HWY_RESTRICT blk, float* HWY_RESTRICT out) {
  const DF df;
  const hn::RebindToSigned<decltype(df)> di;
  const size_t L = hn::Lanes(df);
  const float d = quant::half_at(blk), dmin = quant::half_at(blk + 2);
  const uint8_t* qh = blk + 16;
  const uint8_t* q = blk + (kFiveBit ? 48 : 16);
  const auto mask = hn::Set(di, 0xF), one = hn::Set(di, 1);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    quant::kquant_scale_min(blk + 4, j, &sc, &m);
    const auto dl = hn::Set(df, d * float(sc)), ml = hn::Set(df, dmin * float(m));
    const uint8_t* qj = q + 32 * (j / 2);
    for (size_t i = 0; i < 32; i += L) {
      const auto v = LoadU8AsI32(di, qj + i);
      auto n = (j & 1) ? hn::ShiftRight<4>(v) : hn::And(v, mask);
      if (kFiveBit) n = hn::Or(n, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(LoadU8AsI32(di, qh + i), j), one)));
      hn::StoreU(hn::Sub(hn::Mul(dl, hn::ConvertTo(df, n)), ml), df, out + 32 * j + i);
    }
  }
}

// Q6_K (layout as quant_blocks.h's dequantize_q6_k): 16 groups of 16 values, dl_g * (q - 32).
template <class DF>
HWY_INLINE void ExpandQ6_K(const uint8_t* HWY_RESTRICT blk, float* HWY_RESTRICT out) {
  const DF df;
  const hn::RebindToSigned<decltype(df)> di;
  const size_t L = hn::Lanes(df);
  const uint8_t* ql = blk;
  const uint8_t* qh = blk + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
  const float d = quant::half_at(blk + 208);
  const auto mask4 = hn::Set(di, 0xF), mask2 = hn::Set(di, 3), offset = hn::Set(di, 32);
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < 4; ++s) {
      for (int g = 0; g < 2; ++g) {
        const int grp = 8 * h + 2 * s + g;
        const auto dl = hn::Set(df, d * float(sc[grp]));
        const uint8_t* lg = ql + 64 * h + 32 * (s & 1) + 16 * g;
        const uint8_t* hg = qh + 32 * h + 16 * g;
        for (size_t i = 0; i < 16; i += L) {
          const auto lo = hn::And(hn::ShiftRightSame(LoadU8AsI32(di, lg + i), 4 * (s >> 1)), mask4);
          const auto hi = hn::And(hn::ShiftRightSame(LoadU8AsI32(di, hg + i), 2 * s), mask2);
          const auto v = hn::Sub(hn::Or(lo, hn::ShiftLeft<4>(hi)), offset);
          hn::StoreU(hn::Mul(dl, hn::ConvertTo(df, v)), df, out + 16 * grp + i);
        }
      }
    }
  }
}

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// The same on 16 lanes (AVX-512): one vector per half-block, and the 5-bit types' u32 of high
// bits is itself two 16-lane masks (a mask-register load each, where the 8-lane kernel loads a
// table row per 8 values).
template <bool kFiveBit, bool kMin>
HWY_INLINE float DotQ4Q5x16(const float* HWY_RESTRICT x, const float* HWY_RESTRICT xsum,
                            const uint8_t* HWY_RESTRICT w, size_t blocks) {
  const hn::Full512<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  constexpr size_t kQh = kMin ? 4 : 2, kQ = kQh + (kFiveBit ? 4 : 0);
  constexpr size_t kBytes = kQ + 16;
  const auto mask = hn::Set(di, 0xF), bit4 = hn::Set(di, 16);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df);
  auto o0 = hn::Zero(df), o1 = hn::Zero(df);  // as `offsets` above, even and odd blocks
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = w + b * kBytes;
    const float* xb = x + b * 32;
    const auto vd = BroadcastHalf(df, blk);
    const auto off = kMin ? BroadcastHalf(df, blk + 2) : vd;
    const auto v = LoadU8AsI32(di, blk + kQ);
    auto lo = hn::And(v, mask), hi = hn::ShiftRight<4>(v);
    if (kFiveBit) {
      lo = hn::IfThenElse(hn::LoadMaskBits(di, blk + kQh), hn::Or(lo, bit4), lo);
      hi = hn::IfThenElse(hn::LoadMaskBits(di, blk + kQh + 2), hn::Or(hi, bit4), hi);
    }
    const auto p = hn::MulAdd(hn::ConvertTo(df, hi), hn::LoadU(df, xb + 16),
                              hn::Mul(hn::ConvertTo(df, lo), hn::LoadU(df, xb)));
    if (b & 1) {
      a1 = hn::MulAdd(p, vd, a1);
      o1 = hn::MulAdd(off, hn::Set(df, xsum[b]), o1);
    } else {
      a0 = hn::MulAdd(p, vd, a0);
      o0 = hn::MulAdd(off, hn::Set(df, xsum[b]), o0);
    }
  }
  const float offset_scale = kMin ? 1.0f : (kFiveBit ? -16.0f : -8.0f);
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1))) +
         offset_scale * hn::GetLane(hn::Add(o0, o1));
}
#endif

// Q4_K and Q5_K: super-blocks of 256 values in 8 sub-blocks of 32, w = (d * sc_j) * q - dmin * m_j
// with q 4-bit (Q4_K) or 5-bit (Q5_K: bit 4 of value 32j + i is bit j of qh[i]). Sub-blocks 2p
// and 2p+1 share the 32 bytes q[32p..]: low nibbles for 2p, high for 2p+1. The dot product is
// taken as sum_j (d sc_j) (sum_i q_i x_i) - sum_j (dmin m_j) xsum_j, with xsum_j the sum of x
// over sub-block j (precomputed, K / 32 values): no per-value min. The eight scales and mins are
// unpacked together and turned into floats as vectors; the mins meet xsum in one vector product
// per super-block (scalar code here was a third of the kernel's floating-point instructions).
template <bool kFiveBit>
HWY_INLINE float DotQ45_K(const float* HWY_RESTRICT x, const float* HWY_RESTRICT xsum,
                          const uint8_t* HWY_RESTRICT w, size_t blocks) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::CappedTag<float, 8> d8;  // the eight sub-block scales, in as many vectors as it takes
  const hn::RebindToSigned<decltype(d8)> di8;
  const size_t L = hn::Lanes(df), L8 = hn::Lanes(d8);
  constexpr size_t kBytes = kFiveBit ? 176 : 144, kQ = kFiveBit ? 48 : 16;
  const auto mask = hn::Set(di, 0xF), bit4 = hn::Set(di, 16);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df);
  auto mins = hn::Zero(d8);
  HWY_ALIGN float scale[8];
  HWY_ALIGN uint8_t packed[16];  // bytes 0-7: the scales, 8-15: the mins
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = w + b * kBytes;
    const float* xb = x + b * 256;
    uint64_t sc8, m8;
    quant::kquant_scales_mins(blk + 4, &sc8, &m8);
    std::memcpy(packed, &sc8, 8);
    std::memcpy(packed + 8, &m8, 8);
    const auto d = BroadcastHalf(d8, blk), dmin = BroadcastHalf(d8, blk + 2);
    for (size_t j = 0; j < 8; j += L8) {
      hn::Store(hn::Mul(hn::ConvertTo(d8, LoadU8AsI32(di8, packed + j)), d), d8, scale + j);
      mins = hn::MulAdd(hn::Mul(hn::ConvertTo(d8, LoadU8AsI32(di8, packed + 8 + j)), dmin),
                        hn::LoadU(d8, xsum + 8 * b + j), mins);
    }
    const uint8_t* qh = blk + 16;
    const uint8_t* q = blk + kQ;
    for (int p = 0; p < 4; ++p) {
      const uint8_t* qp = q + 32 * p;
      const float* xlo = xb + 64 * p;
      const float* xhi = xlo + 32;
      auto l0 = hn::Zero(df), l1 = hn::Zero(df), h0 = hn::Zero(df), h1 = hn::Zero(df);
      for (size_t i = 0; i < 32; i += 2 * L) {
        const auto v0 = LoadU8AsI32(di, qp + i), v1 = LoadU8AsI32(di, qp + i + L);
        auto n0 = hn::And(v0, mask), n1 = hn::And(v1, mask);
        auto u0 = hn::ShiftRight<4>(v0), u1 = hn::ShiftRight<4>(v1);
        if (kFiveBit) {  // bits 2p (low sub-block) and 2p + 1 (high) of qh[i] to bit 4
          const auto g0 = hn::ShiftRightSame(LoadU8AsI32(di, qh + i), 2 * p);
          const auto g1 = hn::ShiftRightSame(LoadU8AsI32(di, qh + i + L), 2 * p);
          n0 = hn::Or(n0, hn::And(hn::ShiftLeft<4>(g0), bit4));
          n1 = hn::Or(n1, hn::And(hn::ShiftLeft<4>(g1), bit4));
          u0 = hn::Or(u0, hn::And(hn::ShiftLeft<3>(g0), bit4));
          u1 = hn::Or(u1, hn::And(hn::ShiftLeft<3>(g1), bit4));
        }
        l0 = hn::MulAdd(hn::ConvertTo(df, n0), hn::LoadU(df, xlo + i), l0);
        l1 = hn::MulAdd(hn::ConvertTo(df, n1), hn::LoadU(df, xlo + i + L), l1);
        h0 = hn::MulAdd(hn::ConvertTo(df, u0), hn::LoadU(df, xhi + i), h0);
        h1 = hn::MulAdd(hn::ConvertTo(df, u1), hn::LoadU(df, xhi + i + L), h1);
      }
      a0 = hn::MulAdd(hn::Add(l0, l1), hn::Set(df, scale[2 * p]), a0);
      a1 = hn::MulAdd(hn::Add(h0, h1), hn::Set(df, scale[2 * p + 1]), a1);
    }
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1))) -
         hn::GetLane(hn::SumOfLanes(d8, mins));
}

// The second pass of the K-quants staged as int8 (Q2_K, Q3_K, Q6_K): adds, for each 16-value
// group G of a 256-value super-block, scale[G] * sum_{i in G} qv[i] * x[i] into accumulator G % 4.
template <class V>
HWY_INLINE void GroupDots16(const int8_t* HWY_RESTRICT qv, const float* HWY_RESTRICT xb,
                            const float* HWY_RESTRICT scale, V& a0, V& a1, V& a2, V& a3) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(di)> d8;
  const size_t L = hn::Lanes(df);
  const auto group = [&](size_t g) {
    auto p = hn::Zero(df);
    for (size_t i = 16 * g; i < 16 * g + 16; i += L) {
      p = hn::MulAdd(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, qv + i))),
                     hn::LoadU(df, xb + i), p);
    }
    return p;
  };
  for (size_t g = 0; g < 16; g += 4) {
    a0 = hn::MulAdd(group(g), hn::Set(df, scale[g]), a0);
    a1 = hn::MulAdd(group(g + 1), hn::Set(df, scale[g + 1]), a1);
    a2 = hn::MulAdd(group(g + 2), hn::Set(df, scale[g + 2]), a2);
    a3 = hn::MulAdd(group(g + 3), hn::Set(df, scale[g + 3]), a3);
  }
}

// The K-quants staged as int8 (Q2_K, Q3_K, Q6_K): for each super-block of kBlockBytes,
// stage(blk, xb, scale, qb) writes its 16 group scales and its 256 values as int8 to L1 buffers
// (the bit fiddling runs on whole byte vectors, 32 values an instruction on AVX2), then
// GroupDots16 reads them back against x.
template <size_t kBlockBytes, class Stage>
HWY_INLINE float DotStagedK(const float* HWY_RESTRICT x, const uint8_t* HWY_RESTRICT w,
                            size_t blocks, const Stage& stage) {
  const hn::ScalableTag<float> df;
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  HWY_ALIGN float scale[16];
  HWY_ALIGN int8_t qv[256];
  for (size_t b = 0; b < blocks; ++b) {
    stage(w + b * kBlockBytes, x + b * 256, scale, reinterpret_cast<uint8_t*>(qv));
    GroupDots16(qv, x + b * 256, scale, a0, a1, a2, a3);
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
}

// Q2_K: super-blocks of 256 values, w = (d * (sc[G] & 15)) * q - dmin * (sc[G] >> 4) for 16-value
// group G, q 2-bit: value v = 128h + 32s + i is bits 2s, 2s+1 of q[32h + i]. The mins go in as
// dmin * m_G times x, summed in their own accumulator.
HWY_INLINE float DotQ2_K(const float* HWY_RESTRICT x, const float* /*xsum*/,
                         const uint8_t* HWY_RESTRICT w, size_t blocks) {
  const hn::ScalableTag<float> df;
  const hn::CappedTag<uint8_t, 32> du8;
  const size_t L = hn::Lanes(df), L8 = hn::Lanes(du8);
  const auto mask2 = hn::Set(du8, 3);
  auto am = hn::Zero(df);
  const auto stage = [&](const uint8_t* blk, const float* xb, float* scale, uint8_t* qb) {
    const float d = hn::GetLane(BroadcastHalf(df, blk + 80));
    const float dmin = hn::GetLane(BroadcastHalf(df, blk + 82));
    for (size_t h = 0; h < 2; ++h) {
      for (size_t i = 0; i < 32; i += L8) {
        const auto Q = hn::LoadU(du8, blk + 16 + 32 * h + i);
        uint8_t* o = qb + 128 * h + i;
        hn::StoreU(hn::And(Q, mask2), du8, o);
        hn::StoreU(hn::And(hn::ShiftRight<2>(Q), mask2), du8, o + 32);
        hn::StoreU(hn::And(hn::ShiftRight<4>(Q), mask2), du8, o + 64);
        hn::StoreU(hn::ShiftRight<6>(Q), du8, o + 96);
      }
    }
    for (size_t g = 0; g < 16; ++g) {
      scale[g] = d * float(blk[g] & 0xF);
      const auto ml = hn::Set(df, dmin * float(blk[g] >> 4));
      for (size_t i = 16 * g; i < 16 * g + 16; i += L) {
        am = hn::MulAdd(hn::LoadU(df, xb + i), ml, am);
      }
    }
  };
  const float dots = DotStagedK<84>(x, w, blocks, stage);
  return dots - hn::GetLane(hn::SumOfLanes(df, am));
}

// Q3_K: super-blocks of 256 values, w = (d * scale_G) * q with 6-bit signed scales (see
// quant_blocks.h) and q = (bits 2s, 2s+1 of q[32h + i]) - (bit 4h + s of hmask[i] ? 0 : 4) for
// v = 128h + 32s + i.
HWY_INLINE float DotQ3_K(const float* HWY_RESTRICT x, const float* /*xsum*/,
                         const uint8_t* HWY_RESTRICT w, size_t blocks) {
  const hn::ScalableTag<float> df;
  const hn::CappedTag<uint8_t, 32> du8;
  const size_t L8 = hn::Lanes(du8);
  const auto mask2 = hn::Set(du8, 3), one = hn::Set(du8, 1), four = hn::Set(du8, 4);
  const auto stage = [&](const uint8_t* blk, const float* /*xb*/, float* scale, uint8_t* qb) {
    const float d = hn::GetLane(BroadcastHalf(df, blk + 108));
    for (int g = 0; g < 16; ++g) scale[g] = d * float(quant::q3k_scale(blk + 96, g));
    for (size_t i = 0; i < 32; i += L8) {
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
  };
  return DotStagedK<110>(x, w, blocks, stage);
}

// Q6_K: super-blocks of 256 values, w = (d * sc[v / 16]) * (q - 32) with q 6-bit: for value
// v = 128h + 32s + i, the low 4 bits are a nibble of ql[64h + 32(s & 1) + i] (high nibble when
// s >= 2) and the top 2 bits are bits 2s, 2s+1 of qh[32h + i]; q - 32 is staged as int8 and each
// 16-value group's sum of (q - 32) x scaled once, as for Q8_0.
HWY_INLINE float DotQ6_K(const float* HWY_RESTRICT x, const float* /*xsum*/,
                         const uint8_t* HWY_RESTRICT w, size_t blocks) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(di)> d8;
  const size_t L = hn::Lanes(df);
  const hn::CappedTag<uint8_t, 32> du8;
  const size_t L8 = hn::Lanes(du8);
  const auto mask4 = hn::Set(du8, 0x0F), mask30 = hn::Set(du8, 0x30), off = hn::Set(du8, 32);
  const auto stage = [&](const uint8_t* blk, const float* /*xb*/, float* scale, uint8_t* qb) {
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
    const auto vd = BroadcastHalf(df, blk + 208);
    for (size_t g = 0; g < 16; g += L) {
      hn::Store(hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, sc + g))), vd), df,
                scale + g);
    }
    for (size_t h = 0; h < 2; ++h) {
      const uint8_t* ql = blk + 64 * h;
      const uint8_t* qh = blk + 128 + 32 * h;
      uint8_t* o = qb + 128 * h;
      for (size_t i = 0; i < 32; i += L8) {
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
  };
  return DotStagedK<210>(x, w, blocks, stage);
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
