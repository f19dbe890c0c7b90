// Per-target dot products of R rows of float32 x with one row of block-quantized weights, for
// linear_quantized (its only path, any M): each weight block is read once, its integers widened
// to 32-bit lanes and converted to float32 in registers, then multiplied with each of the R rows
// of x into that row's own float32 accumulators; the expanded weights are never stored (Q2_K,
// Q3_K and Q6_K stage their small integers as int8 in a 256-byte L1 buffer). Scales are applied
// once per block or group to the sum of q * x, and mins/offsets through sums of x. Every row of x
// goes through exactly the operations it would go through alone (R = 1, decode): the decoded
// block is shared, the arithmetic is not, so a row's result does not depend on R or on the other
// rows. Accumulation order depends only on K. Every kernel takes
// (x, ldx, xsum, ldxs, w, blocks, out, ldo): R rows of x ldx apart, their sums over each 32 values
// (ldxs apart), and writes out[r * ldo]. Vectors are kept in arrays (no sizeless targets are
// compiled; see CMakeLists.txt).
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
template <size_t R>
HWY_INLINE void DotQ8_0(const float* HWY_RESTRICT x, size_t ldx, const float* /*xsum*/,
                        size_t /*ldxs*/, const uint8_t* HWY_RESTRICT w, size_t blocks,
                        float* HWY_RESTRICT out, size_t ldo) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(di)> d8;
  using V = hn::Vec<decltype(df)>;
  constexpr size_t kL = hn::MaxLanes(df), kV = 32 / kL;
  V a0[R], a1[R];
  for (size_t r = 0; r < R; ++r) a0[r] = a1[r] = hn::Zero(df);
  const auto block = [&](const uint8_t* blk, size_t x0, V* acc) {
    const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2);
    V qf[kV];
    for (size_t v = 0; v < kV; ++v) qf[v] = hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, q + v * kL)));
    const V vd = BroadcastHalf(df, blk);
    for (size_t r = 0; r < R; ++r) {
      const float* xb = x + r * ldx + x0;
      V p = hn::Mul(qf[0], hn::LoadU(df, xb));
      for (size_t v = 1; v < kV; ++v) p = hn::MulAdd(qf[v], hn::LoadU(df, xb + v * kL), p);
      acc[r] = hn::MulAdd(p, vd, acc[r]);
    }
  };
  size_t b = 0;
  for (; b + 2 <= blocks; b += 2) {
    block(w + b * 34, b * 32, a0);
    block(w + b * 34 + 34, b * 32 + 32, a1);
  }
  if (b < blocks) block(w + b * 34, b * 32, a0);
  for (size_t r = 0; r < R; ++r) out[r * ldo] = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0[r], a1[r])));
}

// Bit 4 (as 16 or 0) of the 5-bit types' values j .. j + Lanes - 1 (Lanes <= 8, not crossing a
// multiple of 8), from the table row of the byte of qh holding their high bits.
template <class DI>
HWY_INLINE hn::Vec<DI> Q5HighBits(DI di, uint32_t qh, size_t j) {
  return hn::LoadU(di, kQ5HighBits.lanes[(qh >> (j & ~size_t(7))) & 0xFF] + (j & 7));
}

// Q4_0, Q4_1, Q5_0, Q5_1: blocks of 32 values; value i < 16 is the low nibble of q[i], value
// 16 + i its high nibble; the 5-bit types add bit j of a little-endian u32 as bit 4 of value j.
// w = d * (q - 8) or d * (q - 16) for the signed types, d * q + m for Q4_1 and Q5_1. The products
// d * q are exact in float32 (11 + 5 bits): they are formed once per block and shared by the R
// rows, each of which spends one FMA per vector of them (four accumulators: block parity, and
// vector parity or half-block); the mins go in once per block as m * xsum_b. DotQ4Q5 takes
// vectors of up to 8 lanes (DF, a CappedTag on wider targets): each half-block is walked in
// chunks of Lanes.
template <class DF, bool kFiveBit, bool kMin, size_t R>
HWY_INLINE void DotQ4Q5(const float* HWY_RESTRICT x, size_t ldx, const float* HWY_RESTRICT xsum,
                        size_t ldxs, const uint8_t* HWY_RESTRICT w, size_t blocks,
                        float* HWY_RESTRICT out, size_t ldo) {
  const DF df;
  const hn::RebindToSigned<decltype(df)> di;
  using V = hn::Vec<decltype(df)>;
  constexpr size_t kL = hn::MaxLanes(df), kV = 16 / kL;
  constexpr size_t kQh = kMin ? 4 : 2, kQ = kQh + (kFiveBit ? 4 : 0);
  constexpr size_t kBytes = kQ + 16;
  const auto mask = hn::Set(di, 0xF);
  const auto offset = hn::Set(di, kMin ? 0 : (kFiveBit ? 16 : 8));
  V a[4][R];
  V mins[R];  // sum of m * xsum_b (Q4_1, Q5_1), every lane
  for (size_t r = 0; r < R; ++r) a[0][r] = a[1][r] = a[2][r] = a[3][r] = mins[r] = hn::Zero(df);
  // Block b into the accumulators of its parity (kOdd, a compile-time index: the accumulators
  // stay in registers).
  const auto block = [&](size_t b, auto odd) {
    constexpr size_t kOdd = decltype(odd)::value;
    const uint8_t* blk = w + b * kBytes;
    const V vd = BroadcastHalf(df, blk);
    uint32_t qh = 0;
    if (kFiveBit) std::memcpy(&qh, blk + kQh, 4);
    const uint8_t* q = blk + kQ;
    V lo[kV], hi[kV];  // the weights d * q (d * (q - offset)) of values v * kL.. and 16 + v * kL..
    for (size_t v = 0; v < kV; ++v) {
      const auto u = LoadU8AsI32(di, q + v * kL);
      auto n = hn::And(u, mask), h = hn::ShiftRight<4>(u);
      if (kFiveBit) {
        n = hn::Or(n, Q5HighBits(di, qh, v * kL));
        h = hn::Or(h, Q5HighBits(di, qh, 16 + v * kL));
      }
      if (!kMin) {
        n = hn::Sub(n, offset);
        h = hn::Sub(h, offset);
      }
      lo[v] = hn::Mul(hn::ConvertTo(df, n), vd);
      hi[v] = hn::Mul(hn::ConvertTo(df, h), vd);
    }
    const V vm = kMin ? BroadcastHalf(df, blk + 2) : vd;
    for (size_t r = 0; r < R; ++r) {
      const float* xb = x + r * ldx + b * 32;
      for (size_t v = 0; v < kV; ++v) {
        V& al = a[2 * kOdd + (v & 1)][r];
        al = hn::MulAdd(lo[v], hn::LoadU(df, xb + v * kL), al);
        al = hn::MulAdd(hi[v], hn::LoadU(df, xb + 16 + v * kL), al);
      }
      if (kMin) mins[r] = hn::MulAdd(vm, hn::Set(df, xsum[r * ldxs + b]), mins[r]);
    }
  };
  size_t b = 0;
  for (; b + 2 <= blocks; b += 2) {
    block(b, std::integral_constant<size_t, 0>());
    block(b + 1, std::integral_constant<size_t, 1>());
  }
  if (b < blocks) block(b, std::integral_constant<size_t, 0>());
  for (size_t r = 0; r < R; ++r) {
    const float dots = hn::GetLane(
        hn::SumOfLanes(df, hn::Add(hn::Add(a[0][r], a[1][r]), hn::Add(a[2][r], a[3][r]))));
    out[r * ldo] = kMin ? dots + hn::GetLane(mins[r]) : dots;
  }
}

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// The same on 16 lanes (AVX-512): one vector per half-block, and the 5-bit types' u32 of high
// bits is itself two 16-lane masks (a mask-register load each, where the 8-lane kernel loads a
// table row per 8 values).
template <bool kFiveBit, bool kMin, size_t R>
HWY_INLINE void DotQ4Q5x16(const float* HWY_RESTRICT x, size_t ldx,
                           const float* HWY_RESTRICT xsum, size_t ldxs,
                           const uint8_t* HWY_RESTRICT w, size_t blocks, float* HWY_RESTRICT out,
                           size_t ldo) {
  const hn::Full512<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  using V = hn::Vec<decltype(df)>;
  constexpr size_t kQh = kMin ? 4 : 2, kQ = kQh + (kFiveBit ? 4 : 0);
  constexpr size_t kBytes = kQ + 16;
  const auto mask = hn::Set(di, 0xF), bit4 = hn::Set(di, 16);
  const auto offset = hn::Set(di, kMin ? 0 : (kFiveBit ? 16 : 8));
  V a[4][R];
  V m0[R], m1[R];  // as `mins` above, even and odd blocks
  for (size_t r = 0; r < R; ++r) {
    a[0][r] = a[1][r] = a[2][r] = a[3][r] = m0[r] = m1[r] = hn::Zero(df);
  }
  const auto block = [&](size_t b, auto odd) {
    constexpr size_t kOdd = decltype(odd)::value;
    const uint8_t* blk = w + b * kBytes;
    const V vd = BroadcastHalf(df, blk);
    const auto v = LoadU8AsI32(di, blk + kQ);
    auto lo = hn::And(v, mask), hi = hn::ShiftRight<4>(v);
    if (kFiveBit) {
      lo = hn::IfThenElse(hn::LoadMaskBits(di, blk + kQh), hn::Or(lo, bit4), lo);
      hi = hn::IfThenElse(hn::LoadMaskBits(di, blk + kQh + 2), hn::Or(hi, bit4), hi);
    }
    if (!kMin) {
      lo = hn::Sub(lo, offset);
      hi = hn::Sub(hi, offset);
    }
    const V wlo = hn::Mul(hn::ConvertTo(df, lo), vd), whi = hn::Mul(hn::ConvertTo(df, hi), vd);
    const V vm = kMin ? BroadcastHalf(df, blk + 2) : vd;
    for (size_t r = 0; r < R; ++r) {
      const float* xb = x + r * ldx + b * 32;
      a[2 * kOdd][r] = hn::MulAdd(wlo, hn::LoadU(df, xb), a[2 * kOdd][r]);
      a[2 * kOdd + 1][r] = hn::MulAdd(whi, hn::LoadU(df, xb + 16), a[2 * kOdd + 1][r]);
      if (kMin) {
        V& m = kOdd ? m1[r] : m0[r];
        m = hn::MulAdd(vm, hn::Set(df, xsum[r * ldxs + b]), m);
      }
    }
  };
  size_t b = 0;
  for (; b + 2 <= blocks; b += 2) {
    block(b, std::integral_constant<size_t, 0>());
    block(b + 1, std::integral_constant<size_t, 1>());
  }
  if (b < blocks) block(b, std::integral_constant<size_t, 0>());
  for (size_t r = 0; r < R; ++r) {
    const float dots = hn::GetLane(
        hn::SumOfLanes(df, hn::Add(hn::Add(a[0][r], a[1][r]), hn::Add(a[2][r], a[3][r]))));
    out[r * ldo] = kMin ? dots + hn::GetLane(hn::Add(m0[r], m1[r])) : dots;
  }
}
#endif

// Q4_K and Q5_K: super-blocks of 256 values in 8 sub-blocks of 32, w = (d * sc_j) * q - dmin * m_j
// with q 4-bit (Q4_K) or 5-bit (Q5_K: bit 4 of value 32j + i is bit j of qh[i]). Sub-blocks 2p
// and 2p+1 share the 32 bytes q[32p..]: low nibbles for 2p, high for 2p+1. The dot product is
// taken as sum_i ((d sc_j) q_i) x_i - sum_j (dmin m_j) xsum_j, with xsum_j the sum of x over
// sub-block j (precomputed, K / 32 values): (d sc_j) q_i is exact in float32 (11 + 6 + 5 bits),
// formed once per block and shared by the R rows, each of which then spends one FMA per vector
// (four accumulators: low/high sub-block, even/odd vector). The mins meet xsum in one vector
// product per super-block.
template <bool kFiveBit, size_t R>
HWY_INLINE void DotQ45_K(const float* HWY_RESTRICT x, size_t ldx, const float* HWY_RESTRICT xsum,
                         size_t ldxs, const uint8_t* HWY_RESTRICT w, size_t blocks,
                         float* HWY_RESTRICT out, size_t ldo) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::CappedTag<float, 8> d8;  // the eight sub-block scales, in as many vectors as it takes
  const hn::RebindToSigned<decltype(d8)> di8;
  using V = hn::Vec<decltype(df)>;
  using V8 = hn::Vec<decltype(d8)>;
  constexpr size_t kL = hn::MaxLanes(df), kL8 = hn::MaxLanes(d8), kV = 32 / kL;
  constexpr size_t kBytes = kFiveBit ? 176 : 144, kQ = kFiveBit ? 48 : 16;
  const auto mask = hn::Set(di, 0xF), bit4 = hn::Set(di, 16);
  V a[4][R];
  V8 mins[R];
  for (size_t r = 0; r < R; ++r) {
    a[0][r] = a[1][r] = a[2][r] = a[3][r] = hn::Zero(df);
    mins[r] = hn::Zero(d8);
  }
  HWY_ALIGN float scale[8];
  HWY_ALIGN uint8_t packed[16];  // bytes 0-7: the scales, 8-15: the mins
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = w + b * kBytes;
    uint64_t sc8, m8;
    quant::kquant_scales_mins(blk + 4, &sc8, &m8);
    std::memcpy(packed, &sc8, 8);
    std::memcpy(packed + 8, &m8, 8);
    const auto d = BroadcastHalf(d8, blk), dmin = BroadcastHalf(d8, blk + 2);
    V8 ml[8 / kL8];  // dmin * m_j
    for (size_t j = 0; j < 8; j += kL8) {
      hn::Store(hn::Mul(hn::ConvertTo(d8, LoadU8AsI32(di8, packed + j)), d), d8, scale + j);
      ml[j / kL8] = hn::Mul(hn::ConvertTo(d8, LoadU8AsI32(di8, packed + 8 + j)), dmin);
    }
    for (size_t r = 0; r < R; ++r) {
      for (size_t j = 0; j < 8; j += kL8) {
        mins[r] = hn::MulAdd(ml[j / kL8], hn::LoadU(d8, xsum + r * ldxs + 8 * b + j), mins[r]);
      }
    }
    const uint8_t* qh = blk + 16;
    const uint8_t* q = blk + kQ;
    for (int p = 0; p < 4; ++p) {
      const uint8_t* qp = q + 32 * p;
      // Sub-block 2p (low nibbles, kHalf 0), then 2p + 1 (a compile-time index: the
      // accumulators stay in registers).
      const auto sub_block = [&](auto half) {
        constexpr size_t kHalf = decltype(half)::value;
        const V dl = hn::Set(df, scale[2 * p + kHalf]);
        V wv[kV];
        for (size_t v = 0; v < kV; ++v) {
          const auto u = LoadU8AsI32(di, qp + v * kL);
          auto n = kHalf ? hn::ShiftRight<4>(u) : hn::And(u, mask);
          if (kFiveBit) {  // bit 2p + kHalf of qh[i] to bit 4
            const auto g = hn::ShiftRightSame(LoadU8AsI32(di, qh + v * kL), int(2 * p + kHalf));
            n = hn::Or(n, hn::And(hn::ShiftLeft<4>(g), bit4));
          }
          wv[v] = hn::Mul(hn::ConvertTo(df, n), dl);
        }
        for (size_t r = 0; r < R; ++r) {
          const float* xs = x + r * ldx + b * 256 + 64 * p + 32 * kHalf;
          for (size_t v = 0; v < kV; ++v) {
            V& acc = a[2 * kHalf + (v & 1)][r];
            acc = hn::MulAdd(wv[v], hn::LoadU(df, xs + v * kL), acc);
          }
        }
      };
      sub_block(std::integral_constant<size_t, 0>());
      sub_block(std::integral_constant<size_t, 1>());
    }
  }
  for (size_t r = 0; r < R; ++r) {
    out[r * ldo] = hn::GetLane(hn::SumOfLanes(
                       df, hn::Add(hn::Add(a[0][r], a[1][r]), hn::Add(a[2][r], a[3][r])))) -
                   hn::GetLane(hn::SumOfLanes(d8, mins[r]));
  }
}

// The K-quants staged as int8 (Q2_K, Q3_K, Q6_K): for each super-block of kBlockBytes,
// stage(blk, scale, mscale, qb) writes its 16 group scales (and with kMins the 16 group mins,
// dmin * m_G) and its 256 values as int8 to L1 buffers (the bit fiddling runs on whole byte
// vectors, 32 values an instruction on AVX2). Then each 16-value group G's weights scale[G] * q
// are formed once in registers and shared by the R rows, each adding them times x into its
// accumulator G % 4 (one FMA per vector); with kMins, each row also sums mscale[G] * x in its own
// accumulator, subtracted at the end.
template <size_t R, size_t kBlockBytes, bool kMins, class Stage>
HWY_INLINE void DotStagedK(const float* HWY_RESTRICT x, size_t ldx, const uint8_t* HWY_RESTRICT w,
                           size_t blocks, float* HWY_RESTRICT out, size_t ldo,
                           const Stage& stage) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(di)> d8;
  using V = hn::Vec<decltype(df)>;
  constexpr size_t kL = hn::MaxLanes(df), kV = kL >= 16 ? 1 : 16 / kL;  // vectors per group
  V a[4][R], am[R];
  for (size_t r = 0; r < R; ++r) a[0][r] = a[1][r] = a[2][r] = a[3][r] = am[r] = hn::Zero(df);
  HWY_ALIGN float scale[16];
  HWY_ALIGN float mscale[16];
  HWY_ALIGN int8_t qv[256];
  for (size_t b = 0; b < blocks; ++b) {
    stage(w + b * kBlockBytes, scale, mscale, reinterpret_cast<uint8_t*>(qv));
    // Group g into accumulator kAcc = g % 4 (a compile-time index: they stay in registers).
    const auto group = [&](size_t g, auto acc) {
      constexpr size_t kAcc = decltype(acc)::value;
      const V sg = hn::Set(df, scale[g]);
      V wv[kV];
      for (size_t v = 0; v < kV; ++v) {
        wv[v] = hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, qv + 16 * g + v * kL))), sg);
      }
      for (size_t r = 0; r < R; ++r) {
        const float* xg = x + r * ldx + b * 256 + 16 * g;
        for (size_t v = 0; v < kV; ++v) {
          a[kAcc][r] = hn::MulAdd(wv[v], hn::LoadU(df, xg + v * kL), a[kAcc][r]);
        }
        if (kMins) {
          const V ml = hn::Set(df, mscale[g]);
          for (size_t v = 0; v < kV; ++v) am[r] = hn::MulAdd(hn::LoadU(df, xg + v * kL), ml, am[r]);
        }
      }
    };
    for (size_t g = 0; g < 16; g += 4) {
      group(g, std::integral_constant<size_t, 0>());
      group(g + 1, std::integral_constant<size_t, 1>());
      group(g + 2, std::integral_constant<size_t, 2>());
      group(g + 3, std::integral_constant<size_t, 3>());
    }
  }
  for (size_t r = 0; r < R; ++r) {
    const float dots = hn::GetLane(
        hn::SumOfLanes(df, hn::Add(hn::Add(a[0][r], a[1][r]), hn::Add(a[2][r], a[3][r]))));
    out[r * ldo] = kMins ? dots - hn::GetLane(hn::SumOfLanes(df, am[r])) : dots;
  }
}

// Q2_K: super-blocks of 256 values, w = (d * (sc[G] & 15)) * q - dmin * (sc[G] >> 4) for 16-value
// group G, q 2-bit: value v = 128h + 32s + i is bits 2s, 2s+1 of q[32h + i]. The mins go in as
// dmin * m_G times x, summed in their own accumulator.
template <size_t R>
HWY_INLINE void DotQ2_K(const float* HWY_RESTRICT x, size_t ldx, const float* /*xsum*/,
                        size_t /*ldxs*/, const uint8_t* HWY_RESTRICT w, size_t blocks,
                        float* HWY_RESTRICT out, size_t ldo) {
  const hn::ScalableTag<float> df;
  const hn::CappedTag<uint8_t, 32> du8;
  const size_t L8 = hn::Lanes(du8);
  const auto mask2 = hn::Set(du8, 3);
  const auto stage = [&](const uint8_t* blk, float* scale, float* mscale, uint8_t* qb) {
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
      mscale[g] = dmin * float(blk[g] >> 4);
    }
  };
  DotStagedK<R, 84, true>(x, ldx, w, blocks, out, ldo, stage);
}

// Q3_K: super-blocks of 256 values, w = (d * scale_G) * q with 6-bit signed scales (see
// quant_blocks.h) and q = (bits 2s, 2s+1 of q[32h + i]) - (bit 4h + s of hmask[i] ? 0 : 4) for
// v = 128h + 32s + i.
template <size_t R>
HWY_INLINE void DotQ3_K(const float* HWY_RESTRICT x, size_t ldx, const float* /*xsum*/,
                        size_t /*ldxs*/, const uint8_t* HWY_RESTRICT w, size_t blocks,
                        float* HWY_RESTRICT out, size_t ldo) {
  const hn::ScalableTag<float> df;
  const hn::CappedTag<uint8_t, 32> du8;
  const size_t L8 = hn::Lanes(du8);
  const auto mask2 = hn::Set(du8, 3), one = hn::Set(du8, 1), four = hn::Set(du8, 4);
  const auto stage = [&](const uint8_t* blk, float* scale, float* /*mscale*/, uint8_t* qb) {
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
  DotStagedK<R, 110, false>(x, ldx, w, blocks, out, ldo, stage);
}

// Q6_K: super-blocks of 256 values, w = (d * sc[v / 16]) * (q - 32) with q 6-bit: for value
// v = 128h + 32s + i, the low 4 bits are a nibble of ql[64h + 32(s & 1) + i] (high nibble when
// s >= 2) and the top 2 bits are bits 2s, 2s+1 of qh[32h + i]; q - 32 is staged as int8 and each
// 16-value group's sum of (q - 32) x scaled once, as for Q8_0.
template <size_t R>
HWY_INLINE void DotQ6_K(const float* HWY_RESTRICT x, size_t ldx, const float* /*xsum*/,
                        size_t /*ldxs*/, const uint8_t* HWY_RESTRICT w, size_t blocks,
                        float* HWY_RESTRICT out, size_t ldo) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(di)> d8;
  const size_t L = hn::Lanes(df);
  const hn::CappedTag<uint8_t, 32> du8;
  const size_t L8 = hn::Lanes(du8);
  const auto mask4 = hn::Set(du8, 0x0F), mask30 = hn::Set(du8, 0x30), off = hn::Set(du8, 32);
  const auto stage = [&](const uint8_t* blk, float* scale, float* /*mscale*/, uint8_t* qb) {
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
  DotStagedK<R, 210, false>(x, ldx, w, blocks, out, ldo, stage);
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
