// linear_quantized_int8 (arithmetic in quant_int8.h): x rounded to int8 row by row (QuantizeRow),
// then the weight rows split into tasks (gemm_tiling.h) that run LinearRows. Every weight block
// becomes integers: its values in unsigned form u (or int8 for Q8_0), a scale per group of 16 or
// 32 values, and a multiplier per group of the group's sum of q_x (the mins of Q4_1/Q5_1/Q2_K/
// Q4_K/Q5_K; the offsets 8, 16, 4 * scale, 32 * scale of the types stored with one). The sums of
// u * q_x are products of an unsigned and a signed byte, which is what x86 multiplies natively:
// maddubs (AVX2, AVX-512 without VNNI) and vpdpbusd (AVX-512 VNNI, the AVX3_DL target). No
// product overflows: u <= 63 except Q8_0 (signed values: the |w| * sign(x, w) form, or x + 128
// with vpdpbusd's exact 32-bit sums), and |q_x| <= 127. The kernels, per target and type:
// - quant_int8_avx512-inl.h (AVX3_DL and AVX3; Q4_0, Q5_0, Q4_1, Q5_1, Q4_K, Q5_K, Q6_K: the
//   270M's types but its Q8_0): whole-block integer sums, a 16-row matrix-vector kernel for
//   M = 1 and a register-blocked GEMM over a packed unsigned-byte panel for M > 1;
// - quant_int8_avx2-inl.h (AVX2; the same types and arithmetic in 256-bit registers, maddubs +
//   madd): an 8-row matrix-vector kernel for M = 1 and a GEMM over a 16-row packed panel;
// - quant_int8_lanes-inl.h (Q8_0, Q2_K, Q3_K on AVX2, AVX3 and AVX3_DL): lanes of 4
//   values (AVX3_DL's Q8_0: two blocks per 512-bit product), each type decoded in registers, a block applied to up to four rows of x with the same
//   operations per row; the other targets (SSE4, SCALAR, NEON, ...) expand each block into
//   quant_int8_blocks-inl.h's integer block first, then meet x in plain loops (auto-vectorized):
//   correct, and several times slower (a NEON kernel with its dot-product instructions is future
//   work).
// Integer sums are exact, so row m's float32 terms are the same numbers whatever M.
#include "csrc/cpu/quant_int8.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "csrc/core/threads.h"
#include "csrc/cpu/gemm_tiling.h"
#include "csrc/cpu/quant_int8_row.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/quant_int8.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "csrc/cpu/quant_int8_blocks-inl.h"
#include "csrc/cpu/quant_int8_lanes-inl.h"
#include "csrc/cpu/quant_int8_avx512-inl.h"
#include "csrc/cpu/quant_int8_avx2-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using int8::XRow;

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
  const hn::Rebind<int8_t, decltype(df)> d8t;
  const size_t L = hn::Lanes(df);
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
    // Rounded, clamped to [-127, 127], narrowed and summed per 16 in vectors (L <= 16 on every
    // compiled target). A non-finite block's values are whatever the clamp makes of NaN: its
    // outputs are NaN through d.
    const auto lo = hn::Set(df, -127.0f), hi = hn::Set(df, 127.0f);
    for (size_t g = 0; g < bs; g += 16) {
      auto sum = hn::Zero(di);
      for (size_t i = g; i < g + 16; i += L) {
        const auto r = hn::Round(hn::Mul(hn::LoadU(df, x + b0 + i), vid));
        const auto c = hn::ConvertTo(di, hn::Min(hn::Max(r, lo), hi));
        sum = hn::Add(sum, c);
        hn::StoreU(hn::DemoteTo(d8t, c), d8t, q + b0 + i);
      }
      s16[(b0 + g) / 16] = int16_t(hn::GetLane(hn::SumOfLanes(di, sum)));
    }
    if (bs == 32) {
      ds[b0 / 32] = d[b0 / 32] * float(int32_t(s16[b0 / 16]) + s16[b0 / 16 + 1]);
      for (size_t i = 0; i < 8; ++i) d8[b0 / 4 + i] = d[b0 / 32];
      nsum8[b0 / 4] = -offset * (int32_t(s16[b0 / 16]) + s16[b0 / 16 + 1]);
      for (size_t i = 1; i < 8; ++i) nsum8[b0 / 4 + i] = 0;
    }
  }
}

// The whole-block kernels of this target (x86), for the types they handle.
#if HWY_TARGET == HWY_AVX2
namespace whole = avx2;
#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
namespace whole = avx512;
#endif

GC_I8_ATTR void LinearRows(QType t, const uint8_t* w, size_t row_bytes, size_t n, size_t blocks,
                           const XRow* xr, size_t M, const float* bias, float* out, size_t ldo) {
  switch (t) {
#if GC_I8_X86
#define GC_I8_CASE(T)                                                         \
  case T:                                                                     \
    if constexpr (whole::Handles(T)) {                                        \
      return whole::Rows<T>(w, row_bytes, n, blocks, xr, M, bias, out, ldo);  \
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
      t == QType::kQ4_0 ? 8 : t == QType::kQ5_0 ? 16 : 0;
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
