// AVX-512 VNNI (the AVX3_DL target) kernels of linear_quantized_int8 for the 32-value block types
// (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1): every (row of x, weight row, block) pair's integer sum is formed
// exactly, then each output runs one float32 chain over its blocks in K's order:
//   acc = fma(float(isum_b), d_w_b * d_x_b, acc)    (+ acc = fma(m_w_b, d_x_b * xsum_b, acc) for
//                                                      the types with a min), out = acc + bias,
// where isum_b = sum(q_w * q_x) over the block (the offsets 8, 16 subtracted through xsum_b). The
// integer sums are exact in any order, so the two kernels below may form them differently and
// still give the same bits: a row's outputs do not depend on M, the tile or the thread count.
// - M = 1 (decode): Matvec16 takes 16 weight rows at a time straight from the GGUF blocks, two
//   blocks per 512-bit vpdpbusd, and reduces the 16 rows' lanes together (Reduce16): one shuffle
//   and add per row and block instead of a float epilogue per row.
// - M > 1 (prefill, scoring): Gemm packs 32 weight rows into an unsigned-byte panel (per block,
//   per 4 values: 32 rows x 4 bytes, Q8_0 as w + 128), so that one vpdpbusd with four bytes of x
//   broadcast serves 16 weight rows; R rows of x x 32 weight rows per register tile, one float
//   epilogue per block per 16 outputs.
// Include after hwy/highway.h inside quant_int8.cc's foreach_target loop (it uses that file's
// XRow, HalfAt, FifthBits, BlockBytes and GC_I8_ATTR).

#if defined(GEMMACPP_CPU_QUANT_INT8_VNNI_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef GEMMACPP_CPU_QUANT_INT8_VNNI_INL_H_
#undef GEMMACPP_CPU_QUANT_INT8_VNNI_INL_H_
#else
#define GEMMACPP_CPU_QUANT_INT8_VNNI_INL_H_
#endif

#if HWY_TARGET == HWY_AVX3_DL

#include <algorithm>
#include <cstring>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
namespace vnni {

constexpr bool Handles(QType t) {
  return t == QType::kQ8_0 || t == QType::kQ4_0 || t == QType::kQ5_0 || t == QType::kQ4_1 ||
         t == QType::kQ5_1;
}
constexpr bool HasMin32(QType t) { return t == QType::kQ4_1 || t == QType::kQ5_1; }

// The block's 32 values as unsigned bytes in value order: Q8_0's w + 128, the 4/5-bit values as
// stored (their offset 8 or 16 is taken off through the x sums: XRow::nsum8, whose first lane per
// block is -offset * xsum_b, with offset 128 for Q8_0).
template <QType T>
GC_I8_ATTR HWY_INLINE __m256i U32(const uint8_t* HWY_RESTRICT blk) {
  if constexpr (T == QType::kQ8_0) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)),
                            _mm256_set1_epi8(char(0x80)));
  } else {
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
}

// Lanes 0-7 of p[r] summed into lane r of *lo, lanes 8-15 into lane r of *hi (r < 16): the two
// blocks' integer sums of 16 weight rows, by pairwise interleaves (44 instructions).
GC_I8_ATTR HWY_INLINE void Reduce16(const __m512i* p, __m512i* lo, __m512i* hi) {
  __m512i a[8], c[4], e[2];
  for (int i = 0; i < 8; ++i)  // per 128 bits: [A0+A2, B0+B2, A1+A3, B1+B3]
    a[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2 * i], p[2 * i + 1]),
                            _mm512_unpackhi_epi32(p[2 * i], p[2 * i + 1]));
  for (int i = 0; i < 4; ++i)  // per 128 bits: rows 4i .. 4i + 3, each its 4 lanes' sum
    c[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(a[2 * i], a[2 * i + 1]),
                            _mm512_unpackhi_epi64(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 2; ++i)  // [rows 8i..+3 lo, same hi, rows 8i+4..+7 lo, same hi]
    e[i] = _mm512_add_epi32(_mm512_shuffle_i64x2(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_i64x2(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  *lo = _mm512_shuffle_i64x2(e[0], e[1], _MM_SHUFFLE(2, 0, 2, 0));
  *hi = _mm512_shuffle_i64x2(e[0], e[1], _MM_SHUFFLE(3, 1, 3, 1));
}

// ---- M = 1 ------------------------------------------------------------------------------------

// Blocks b (and b + 1 if kTwo) of 16 weight rows against x: the float chain of the 16 outputs in
// acc. pf: how far ahead (bytes) to prefetch each row (the next 16 rows at the same place).
template <QType T, bool kTwo>
GC_I8_ATTR HWY_INLINE void Matvec16Step(const uint8_t* const* rows, size_t b, const XRow& x,
                                        size_t pf, __m512& acc) {
  constexpr size_t bb = BlockBytes(T);
  constexpr bool kOff = !HasMin32(T);
  const __m512i xq = kTwo ? _mm512_loadu_si512(x.q + 32 * b)
                          : _mm512_zextsi256_si512(
                                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q + 32 * b)));
  __m512i start = _mm512_setzero_si512();
  if constexpr (kOff) {
    start = kTwo ? _mm512_loadu_si512(x.nsum8 + 8 * b)
                 : _mm512_zextsi256_si512(
                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.nsum8 + 8 * b)));
  }
  __m512i p[16];
  alignas(64) uint16_t dh[32];
  alignas(64) uint16_t mh[32];
  for (int r = 0; r < 16; ++r) {
    const uint8_t* blk = rows[r] + b * bb;
    _mm_prefetch(reinterpret_cast<const char*>(blk + pf), _MM_HINT_T0);
    __m512i u = _mm512_castsi256_si512(U32<T>(blk));
    if constexpr (kTwo) u = _mm512_inserti64x4(u, U32<T>(blk + bb), 1);
    else u = _mm512_zextsi256_si512(_mm512_castsi512_si256(u));
    p[r] = _mm512_dpbusd_epi32(start, u, xq);
    std::memcpy(dh + r, blk, 2);
    if constexpr (kTwo) std::memcpy(dh + 16 + r, blk + bb, 2);
    if constexpr (!kOff) {
      std::memcpy(mh + r, blk + 2, 2);
      if constexpr (kTwo) std::memcpy(mh + 16 + r, blk + bb + 2, 2);
    }
  }
  __m512i lo, hi;
  Reduce16(p, &lo, &hi);
  const __m512 dw0 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(dh)));
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), _mm512_mul_ps(dw0, _mm512_set1_ps(x.d[b])), acc);
  if constexpr (!kOff) {
    const __m512 mw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(mh)));
    acc = _mm512_fmadd_ps(mw, _mm512_set1_ps(x.ds[b]), acc);
  }
  if constexpr (kTwo) {
    const __m512 dw1 =
        _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(dh + 16)));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_mul_ps(dw1, _mm512_set1_ps(x.d[b + 1])),
                          acc);
    if constexpr (!kOff) {
      const __m512 mw =
          _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(mh + 16)));
      acc = _mm512_fmadd_ps(mw, _mm512_set1_ps(x.ds[b + 1]), acc);
    }
  }
}

template <QType T>
GC_I8_ATTR HWY_NOINLINE void Matvec16(const uint8_t* HWY_RESTRICT w, size_t row_bytes, size_t n,
                                      size_t blocks, const XRow& x, const float* bias,
                                      float* out) {
  for (size_t i0 = 0; i0 < n; i0 += 16) {
    const size_t nr = std::min<size_t>(16, n - i0);
    const uint8_t* rows[16];
    for (size_t r = 0; r < 16; ++r) rows[r] = w + std::min(i0 + r, n - 1) * row_bytes;
    const size_t pf = 16 * row_bytes;
    __m512 acc = _mm512_setzero_ps();
    size_t b = 0;
    for (; b + 2 <= blocks; b += 2) Matvec16Step<T, true>(rows, b, x, pf, acc);
    if (b < blocks) Matvec16Step<T, false>(rows, b, x, pf, acc);
    const __mmask16 m = __mmask16((1u << nr) - 1);
    const __m512 bv = bias ? _mm512_maskz_loadu_ps(m, bias + i0) : _mm512_setzero_ps();
    _mm512_mask_storeu_ps(out + i0, m, _mm512_add_ps(acc, bv));
  }
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
      s[r][0] = s[r][1] = HasMin32(T) ? _mm512_setzero_si512() : _mm512_set1_epi32(xr[r].nsum8[8 * b]);
    }
    const uint8_t* pb = panel + b * kPanelBlock;
    for (size_t j = 0; j < 8; ++j) {
      const __m512i w0 = _mm512_load_si512(pb + 128 * j);
      const __m512i w1 = _mm512_load_si512(pb + 128 * j + 64);
      for (size_t r = 0; r < R; ++r) {
        int32_t xv;
        std::memcpy(&xv, xr[r].q + 32 * b + 4 * j, 4);
        const __m512i xb = _mm512_set1_epi32(xv);
        s[r][0] = _mm512_dpbusd_epi32(s[r][0], w0, xb);
        s[r][1] = _mm512_dpbusd_epi32(s[r][1], w1, xb);
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
  const __mmask16 m0 = __mmask16(nc >= 16 ? 0xFFFF : (1u << nc) - 1);
  const __mmask16 m1 = __mmask16(nc >= 32 ? 0xFFFF : nc <= 16 ? 0 : (1u << (nc - 16)) - 1);
  const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
  for (size_t r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(out + r * ldo, m0, _mm512_add_ps(f[r][0], b0));
    _mm512_mask_storeu_ps(out + r * ldo + 16, m1, _mm512_add_ps(f[r][1], b1));
  }
}

template <QType T, size_t kMax>
GC_I8_ATTR HWY_INLINE void GemmTileUpTo(size_t R, const uint8_t* panel, const float* dw,
                                        const float* mw, size_t blocks, const XRow* xr,
                                        const float* bias, size_t nc, float* out, size_t ldo) {
  if constexpr (kMax > 1) {
    if (R < kMax) return GemmTileUpTo<T, kMax - 1>(R, panel, dw, mw, blocks, xr, bias, nc, out, ldo);
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

// n weight rows against the M rows of x (the 32-value block types).
template <QType T>
GC_I8_ATTR HWY_INLINE void Rows(const uint8_t* w, size_t row_bytes, size_t n, size_t blocks,
                                const XRow* xr, size_t M, const float* bias, float* out,
                                size_t ldo) {
  if (M == 1) return Matvec16<T>(w, row_bytes, n, blocks, xr[0], bias, out);
  Gemm<T>(w, row_bytes, n, blocks, xr, M, bias, out, ldo);
}

}  // namespace vnni
}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3_DL
#endif  // include guard
