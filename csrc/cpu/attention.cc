// CPU attention. Two kernels share one masking model and one per-tile computation (TileUpdate):
//  * prefill: K and V tiles (kKeyTile keys) that some query sees are first converted to float32
//    once per call, K transposed, both in panels (see PanelWidth), which also handles f16/bf16
//    in one place. Then one task = (batch, KV head, block of queries) holds ALL query heads of
//    that KV group as rows, so each tile is read once per group. Per key tile, S = Q K^T runs
//    one key panel at a time through every block of kMR rows (a broadcast-FMA microkernel of kMR
//    rows x kNR vectors of keys; the panel stays in L1 while the Q rows stream past), then each
//    row's tile softmax and merge, then P V runs one panel of head dims at a time the same way.
//    Tiles no query of a task sees are skipped, each block of rows only computes the key columns
//    it can see, element masks are applied only on boundary tiles, and the full score matrix
//    never exists.
//  * decode (few queries): split-K (flash-decoding). One task = (batch, chunk of kDecodeTiles key
//    tiles) computes, for every query row of every head, each tile's partial with the same
//    TileUpdate; the partials are merged in key order. Nothing is packed ahead: each K panel
//    that some row sees is transposed from the cache rows in registers into an L1 buffer just
//    before its scores (attention_panels-inl.h; the same floats as a packed panel, so the same
//    scores), float32 V rows are read in place (other types converted per tile). The old
//    kernel took dot products straight from the cache rows, in an order that the prefill
//    microkernel does not share; the transposes are what decode pays for invariance
//    (docs/benchmarks.md).
// Batch invariance: a row's output is a function of its own query and keys only. Tiles sit at
// absolute key positions, every score is the same FMA chain over d, and each tile's partial
// (max, sum, P V relative to the tile's max) is merged into the row's running state in key order
// by one formula, as it goes (prefill) or afterwards (decode); masked keys and unseen tiles add
// exact zeros or are skipped. So a row is bitwise the same whichever kernel runs it (any Tq),
// whichever rows share its block or call, in a ragged or padded batch. (Non-finite V at keys the
// row does not see but a neighbour in its block does is the exception: 0 * inf is NaN.)
// Task boundaries depend only on the shape, each task writes its own outputs, and reductions run
// in a fixed order, so results are bitwise identical for any thread count (bitwise within one
// SIMD target; targets differ in their last bits).
// attention_varlen runs the tasks of many such problems (the sequences of a ragged batch) in two
// shared parallel regions (every K/V tile packing, then every prefill block and decode chunk;
// batches whose packed tiles outgrow the kept buffer take more) instead of two small regions per
// sequence; attention() is its one-entry case.
#include "csrc/cpu/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "csrc/core/threads.h"
#include "csrc/cpu/dtype_dispatch.h"
#include "hwy/aligned_allocator.h"
#include "hwy/cache_control.h"

// Target-independent pieces: tiling constants and the key bounds of blocks of queries.
#ifndef GEMMACPP_CPU_ATTENTION_SHARED_
#define GEMMACPP_CPU_ATTENTION_SHARED_
namespace gemmacpp::cpu::attn {

constexpr int64_t kKeyTile = 128;  // keys per prefill tile (fewer per-row softmax passes than 64)
constexpr int64_t kRowBlock = 6;          // prefill rows per microkernel call
constexpr int64_t kRowsPerTask = 128;     // prefill rows (queries x heads of a group) per task
constexpr int64_t kDecodeChunk = 256;     // keys per split-K chunk
constexpr int64_t kDecodeTiles = kDecodeChunk / kKeyTile;  // key tiles per split-K chunk
static_assert(kDecodeChunk % kKeyTile == 0, "a split-K chunk is whole key tiles");
constexpr int64_t kDecodeMaxQueries = 4;  // Tq up to this takes the split-K path
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Union of the visible keys (csrc/core/attention_args.h) of positions p0 <= p1, clipped to
// [t0, t1), as one bounding interval (empty when lo >= hi).
inline AttentionKeyRange bounding_range(const AttentionArgs& a, int64_t p0, int64_t p1,
                                        int64_t t0, int64_t t1) {
  const AttentionKeyRange r0 = attention_main_range(a, p0), r1 = attention_main_range(a, p1);
  int64_t lo = r0.lo, hi = r1.hi;
  if (lo >= hi) lo = hi = t0;  // no main range: only the prefix
  const int64_t pre = std::min(a.prefix_len, a.Tk);
  if (pre > 0) {
    lo = (lo < hi) ? std::min(lo, int64_t{0}) : 0;
    hi = std::max(hi, pre);
  }
  return {std::max(lo, t0), std::min(hi, t1)};
}

// K and V of the key tiles that some query sees, converted to float32 once per call: tiles
// [first_tile, first_tile + tiles) of every (batch, KV head), each tile in the panel layout
// described at PanelWidth. kt: [B][Hkv][tiles][K tile]; vt: [B][Hkv][tiles][V tile].
struct PackedKV {
  float* kt = nullptr;
  float* vt = nullptr;
  int64_t first_tile = 0, tiles = 0;
};

}  // namespace gemmacpp::cpu::attn
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/attention.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "csrc/cpu/simd-inl.h"
#include "csrc/cpu/fast_math-inl.h"
#include "csrc/cpu/attention_panels-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using namespace gemmacpp::cpu::attn;
using DF = hn::ScalableTag<float>;

constexpr int kMR = int(kRowBlock);  // query rows per microkernel
constexpr int kNR = 2;  // vectors of keys (scores) or of head dims (P V) per microkernel
// Rows up to which P V over value rows takes 2 * kNR vectors of head dims per call: their
// accumulators (rows x 2 * kNR) and loads must fit the registers (32 with AVX-512, else 16).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr int64_t kWideValueRows = 4;
#else
constexpr int64_t kWideValueRows = 2;
#endif

inline size_t RoundUp(size_t x, size_t m) { return (x + m - 1) / m * m; }

// Packed tiles are stored as panels W = kNR * N floats wide, so that each microkernel call reads
// one contiguous block (no power-of-two strides fighting over L1 sets, prefetch-friendly):
//   K tile: [kKeyTile / W][D][W]   (K transposed, key columns past the tile's end zero)
//   V tile: [DV / W][kKeyTile][W], then, when DV is not a multiple of W, one last panel
//           [kKeyTile][N] (DV = D rounded up to N, zero-padded). The narrow last panel keeps
//           P V from multiplying padding: head_dim 72 is 4 panels of 16 and one of 8, not 80.
inline size_t PanelWidth(size_t N) { return kNR * N; }

// Scores are kept in log2 units, so that the softmax weights are powers of 2 (see
// Exp2NonPositive): q is scaled by scale * log2(e), or, under a softcap, by scale alone and the
// softcap's output by log2(e).
constexpr float kLog2e = 1.4426950408889634f;
inline float QueryScale(const AttentionArgs& a) {
  return a.softcap > 0 ? a.scale : a.scale * kLog2e;
}

// Scratch reused across tasks on one thread (grows, never shrinks).
HWY_INLINE float* Scratch(std::vector<float>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// ---- element conversion ------------------------------------------------------------------------

// dst[0..n) = scale * src[0..n) as float32, zero-padded to a whole number of vectors.
template <class T>
HWY_INLINE void RowToF32(const T* src, size_t n, float scale, float* dst) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const auto vs = hn::Set(df, scale);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(LoadF32(df, src + i), vs), df, dst + i);
  if (i < n) hn::StoreU(hn::Mul(LoadF32Partial(df, src + i, n - i), vs), df, dst + i);
}

template <class T>
HWY_INLINE void RowFromF32(const float* src, size_t n, float scale, T* dst) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const auto vs = hn::Set(df, scale);
  size_t i = 0;
  for (; i + N <= n; i += N) StoreF32(df, hn::Mul(hn::LoadU(df, src + i), vs), dst + i);
  if (i < n) StoreF32Partial(df, hn::Mul(hn::LoadU(df, src + i), vs), dst + i, n - i);
}

// ---- microkernels ------------------------------------------------------------------------------

// s[r][0 .. NR*N) = sum_d q[r][d] * kt[d][0 .. NR*N) for MR rows.
template <int MR, int NR>
HWY_INLINE void ScoreBlock(const float* HWY_RESTRICT q, size_t ldq, const float* HWY_RESTRICT kt,
                           size_t ldk, size_t D, float* HWY_RESTRICT s, size_t lds) {
  const DF df;
  const size_t N = hn::Lanes(df);
  hn::Vec<DF> acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) acc[r][c] = hn::Zero(df);
  for (size_t d = 0; d < D; ++d) {
    hn::Vec<DF> kv[NR];
    for (int c = 0; c < NR; ++c) kv[c] = hn::LoadU(df, kt + d * ldk + c * N);
    for (int r = 0; r < MR; ++r) {
      const auto qv = hn::Set(df, q[r * ldq + d]);
      for (int c = 0; c < NR; ++c) acc[r][c] = hn::MulAdd(qv, kv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) hn::StoreU(acc[r][c], df, s + r * lds + c * N);
}

// ValueBlock for one vector of head dims (the narrow last V panel): MR accumulators alone are too
// few independent FMA chains to hide the FMA latency, so even and odd keys go to two sets that
// are added at the end (parity of the absolute key index within the tile: j0 is even).
template <int MR>
HWY_INLINE void ValueBlockOneVector(const float* HWY_RESTRICT p, size_t ldp, size_t j0, size_t j1,
                                    const float* HWY_RESTRICT v, size_t ldv,
                                    float* HWY_RESTRICT o, size_t ldo,
                                    const float* HWY_RESTRICT alpha,
                                    const float* HWY_RESTRICT beta) {
  const DF df;
  hn::Vec<DF> even[MR], odd[MR];
  for (int r = 0; r < MR; ++r) even[r] = odd[r] = hn::Zero(df);
  size_t j = j0;
  for (; j + 2 <= j1; j += 2) {
    const auto v0 = hn::LoadU(df, v + j * ldv), v1 = hn::LoadU(df, v + (j + 1) * ldv);
    for (int r = 0; r < MR; ++r) {
      even[r] = hn::MulAdd(hn::Set(df, p[r * ldp + j]), v0, even[r]);
      odd[r] = hn::MulAdd(hn::Set(df, p[r * ldp + j + 1]), v1, odd[r]);
    }
  }
  if (j < j1) {
    const auto v0 = hn::LoadU(df, v + j * ldv);
    for (int r = 0; r < MR; ++r) even[r] = hn::MulAdd(hn::Set(df, p[r * ldp + j]), v0, even[r]);
  }
  for (int r = 0; r < MR; ++r) {
    const auto old = hn::Mul(hn::LoadU(df, o + r * ldo), hn::Set(df, alpha[r]));
    hn::StoreU(hn::MulAdd(hn::Add(even[r], odd[r]), hn::Set(df, beta[r]), old), df, o + r * ldo);
  }
}

// o[r][0 .. NV*N) = alpha[r] * o[r][..] + beta[r] * sum_j p[r][j] * v[j][0 .. NV*N), j in
// [j0, j1): the tile's P V (summed in key order from zero) merged into the running output the way
// MergeTile merges a stored tile partial, so that both give the same bits.
template <int MR, int NV>
HWY_INLINE void ValueBlock(const float* HWY_RESTRICT p, size_t ldp, size_t j0, size_t j1,
                           const float* HWY_RESTRICT v, size_t ldv, float* HWY_RESTRICT o,
                           size_t ldo, const float* HWY_RESTRICT alpha,
                           const float* HWY_RESTRICT beta) {
  if constexpr (NV == 1) {
    return ValueBlockOneVector<MR>(p, ldp, j0, j1, v, ldv, o, ldo, alpha, beta);
  }
  const DF df;
  const size_t N = hn::Lanes(df);
  hn::Vec<DF> acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NV; ++c) acc[r][c] = hn::Zero(df);
  for (size_t j = j0; j < j1; ++j) {
    hn::Vec<DF> vv[NV];
    for (int c = 0; c < NV; ++c) vv[c] = hn::LoadU(df, v + j * ldv + c * N);
    for (int r = 0; r < MR; ++r) {
      const auto pv = hn::Set(df, p[r * ldp + j]);
      for (int c = 0; c < NV; ++c) acc[r][c] = hn::MulAdd(pv, vv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    const auto a = hn::Set(df, alpha[r]), b = hn::Set(df, beta[r]);
    for (int c = 0; c < NV; ++c) {
      const auto old = hn::Mul(hn::LoadU(df, o + r * ldo + c * N), a);
      hn::StoreU(hn::MulAdd(acc[r][c], b, old), df, o + r * ldo + c * N);
    }
  }
}

// The microkernel for mr (1..kMR) rows. Kept out of line: called once per block of rows and
// panel, it is big, and a separate symbol keeps profiles readable.
template <int NR>
HWY_NOINLINE void ScoreRows(int mr, const float* q, size_t ldq, const float* kt, size_t ldk,
                            size_t D, float* s, size_t lds) {
  switch (mr) {
    case 1: return ScoreBlock<1, NR>(q, ldq, kt, ldk, D, s, lds);
    case 2: return ScoreBlock<2, NR>(q, ldq, kt, ldk, D, s, lds);
    case 3: return ScoreBlock<3, NR>(q, ldq, kt, ldk, D, s, lds);
    case 4: return ScoreBlock<4, NR>(q, ldq, kt, ldk, D, s, lds);
    case 5: return ScoreBlock<5, NR>(q, ldq, kt, ldk, D, s, lds);
    default: return ScoreBlock<kMR, NR>(q, ldq, kt, ldk, D, s, lds);
  }
}

template <int NV>
HWY_NOINLINE void ValueRows(int mr, const float* p, size_t ldp, size_t j0, size_t j1,
                            const float* v, size_t ldv, float* o, size_t ldo,
                            const float* alpha, const float* beta) {
  switch (mr) {
    case 1: return ValueBlock<1, NV>(p, ldp, j0, j1, v, ldv, o, ldo, alpha, beta);
    case 2: return ValueBlock<2, NV>(p, ldp, j0, j1, v, ldv, o, ldo, alpha, beta);
    case 3: return ValueBlock<3, NV>(p, ldp, j0, j1, v, ldv, o, ldo, alpha, beta);
    case 4: return ValueBlock<4, NV>(p, ldp, j0, j1, v, ldv, o, ldo, alpha, beta);
    case 5: return ValueBlock<5, NV>(p, ldp, j0, j1, v, ldv, o, ldo, alpha, beta);
    default: return ValueBlock<kMR, NV>(p, ldp, j0, j1, v, ldv, o, ldo, alpha, beta);
  }
}

// ---- softmax pieces ----------------------------------------------------------------------------

// s[0..n) = out_scale * tanh(s / cap) (out_scale: cap, or cap * log2(e) for scores in log2
// units); n is a whole number of vectors.
HWY_INLINE void SoftcapRow(float* s, size_t n, float cap, float out_scale) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const auto c = hn::Set(df, out_scale), inv = hn::Set(df, 1.0f / cap);
  for (size_t i = 0; i < n; i += N)
    hn::StoreU(hn::Mul(c, hn::Tanh(df, hn::Mul(hn::LoadU(df, s + i), inv))), df, s + i);
}

// The row's maximum, or NaN when the row holds a NaN: hn::Max may drop a NaN operand (x86's max
// returns its second one), which would silently mask that key where torch's softmax gives NaN.
HWY_INLINE float MaxRow(const float* s, size_t n) {
  const DF df;
  const size_t N = hn::Lanes(df);
  auto m = hn::Set(df, kNegInf);
  auto nan = hn::FirstN(df, 0);
  for (size_t i = 0; i < n; i += N) {
    const auto x = hn::LoadU(df, s + i);
    m = hn::Max(m, x);
    nan = hn::Or(nan, hn::IsNaN(x));
  }
  return hn::AllFalse(df, nan) ? hn::GetLane(hn::MaxOfLanes(df, m))
                               : std::numeric_limits<float>::quiet_NaN();
}

// 2^x for x <= 0 (a score minus its row's running maximum), with fast_math-inl.h's pieces:
// relative error about 1.5e-7. x below -125 (and the -inf of masked keys) gives exactly 0: such a
// weight is under 2^-125 beside the row maximum's 1. About half the work of hn::Exp, which must
// also handle positive and huge arguments; the softmax is most of the non-GEMM work of
// long-sequence attention.
HWY_INLINE hn::Vec<DF> Exp2NonPositive(hn::Vec<DF> x) {
  const DF df;
  const auto lowest = hn::Set(df, -125.0f);
  return hn::IfThenZeroElse(hn::Lt(x, lowest), Exp2InRange(df, hn::Max(x, lowest)));
}

// s[i] = 2^(s[i] - m) in place (masked -inf entries become 0); returns their sum.
HWY_INLINE float Exp2Row(float* s, size_t n, float m) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const auto vm = hn::Set(df, m);
  auto sum0 = hn::Zero(df), sum1 = hn::Zero(df);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto e0 = Exp2NonPositive(hn::Sub(hn::LoadU(df, s + i), vm));
    const auto e1 = Exp2NonPositive(hn::Sub(hn::LoadU(df, s + i + N), vm));
    hn::StoreU(e0, df, s + i);
    hn::StoreU(e1, df, s + i + N);
    sum0 = hn::Add(sum0, e0);
    sum1 = hn::Add(sum1, e1);
  }
  if (i < n) {
    const auto e = Exp2NonPositive(hn::Sub(hn::LoadU(df, s + i), vm));
    hn::StoreU(e, df, s + i);
    sum0 = hn::Add(sum0, e);
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(sum0, sum1)));
}

// ---- one key tile: its partials and their merge ------------------------------------------------
// A query row's output is built the same way whichever kernel computes it (prefill or decode) and
// whatever other rows share its task, so that it does not depend on how many queries a call has or
// on the other sequences of a batch. Keys come in tiles of kKeyTile at absolute key positions; per
// (row, tile): the scores (ScoreBlock: one FMA chain over d per score), the tile's max m_t,
// p = 2^(s - m_t) and its sum l_t (Exp2Row), and the tile's P V summed in key order (ValueBlock).
// The tile partials are merged into the row's running (m, l, o) in key order by MergeTile's
// formula: prefill merges each tile as it goes, decode computes the tiles of its chunks in
// parallel, stores the partials and merges them in order afterwards (DecodeCombineTask). A tile
// that the row does not see is an exact identity of the merge.

// The tile partial (m_t, l_t) of one row from its scores s[0..n) (n whole vectors, masked entries
// -inf, in log2 units); s becomes p = 2^(s - m_t). A NaN or +inf score makes the row NaN, as in
// torch's softmax: l_t = NaN (kept by every later merge), m_t = 0 (finite, so that later maxima
// stay meaningful), p = 0.
HWY_INLINE void TileSoftmax(float* s, size_t n, float& m_t, float& l_t) {
  m_t = MaxRow(s, n);
  if (std::isnan(m_t) || m_t == std::numeric_limits<float>::infinity()) {
    std::fill(s, s + n, 0.0f);
    m_t = 0.0f;
    l_t = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  if (m_t == kNegInf) {  // no visible key in the tile, or only -inf scores
    std::fill(s, s + n, 0.0f);
    l_t = 0.0f;
    return;
  }
  l_t = Exp2Row(s, n, m_t);
}

// Merges a tile partial (m_t, l_t) into the running (m, l) and gives the factors of the outputs'
// merge, o = alpha * o + beta * o_t (ValueBlock, DecodeCombineTask). A tile without visible keys
// (m_t = -inf) is the identity: alpha 1, beta 0, and never -inf - -inf.
HWY_INLINE void MergeTile(float& m, float& l, float m_t, float l_t, float& alpha, float& beta) {
  if (m_t == kNegInf) {
    alpha = 1.0f;
    beta = 0.0f;
    return;
  }
  const float m_new = std::max(m, m_t);
  alpha = std::exp2(m - m_new);  // 0 on the first visible tile (m = -inf)
  beta = std::exp2(m_t - m_new);
  l = std::fma(l_t, beta, l * alpha);  // explicit, so that no contraction differs between callers
  m = m_new;
}

// The factor of a finished row's output, 1 / l; where l = 0: 0 for a row without visible keys
// (its output is 0), NaN for a row whose visible scores are all -inf (torch's softmax of -infs).
HWY_INLINE float OutputScale(const AttentionArgs& a, int64_t pos, float l) {
  if (l != 0.0f) return 1.0f / l;  // a NaN l (a NaN score) gives NaN
  const AttentionKeyRange r = attention_main_range(a, pos);
  const bool sees_keys = r.lo < r.hi || std::min(a.prefix_len, a.Tk) > 0;
  return sees_keys ? std::numeric_limits<float>::quiet_NaN() : 0.0f;
}

// The packing reads K and V rows kPrefetchRows ahead of their use: the rows of one KV head are D
// elements of every Hkv * D ([T, H, D] layout), which the hardware prefetchers miss when one head
// is read at a time (1 KiB of every 4 KiB for 4 heads of 256 floats), and a decode step's packing
// stalled on its loads even with every head in one pass. Prefetching past the end of the data is
// harmless (a hint, never a fault).
constexpr size_t kPrefetchRows = 8;
template <class T>
HWY_INLINE void Prefetch(const T* row, size_t n) {
  const char* p = reinterpret_cast<const char*>(row);
  for (size_t off = 0; off < n * sizeof(T); off += 64) hwy::Prefetch(p + off);
}

struct TileScratch {
  std::vector<float> s, alpha, beta, panel;
  std::vector<size_t> c0, c1;
};

// The keys of a tile as ScoreBlock reads them: panel c (keys [c, c + W), layout at PanelWidth) at
// packed + c * D for a packed tile; or built from the K rows of the cache just before its scores
// (PackKeyPanel, into the L1-sized TileScratch::panel), only for panels that some row sees:
// decode reads each tile once, for few rows, where packing whole tiles (every key, for every
// KV head, through L2) cost more than the scores. Either way the same floats.
struct KeyTile {
  const float* packed = nullptr;
  const void* rows = nullptr;  // key t0 of the tile; keys `stride` elements apart
  int64_t stride = 0;
  void (*pack)(const void* rows, int64_t stride, size_t j0, size_t tk, size_t D, size_t W,
               float* panel) = nullptr;
  // Where the vectors allow: the scores of one block of rows straight from the key rows, the
  // panel's transposed keys never stored (ScoreKeyRows; the same bits as ScoreRows on it).
  void (*score)(int mr, const void* rows, int64_t stride, const float* v, int64_t v_stride,
                size_t j0, size_t tk, size_t D, size_t W, const float* q, size_t ldq, float* s,
                size_t lds) = nullptr;

  static KeyTile Packed(const float* kt) { return {kt}; }
  template <class T>
  static void PackRows(const void* rows, int64_t stride, size_t j0, size_t tk, size_t D,
                       size_t W, float* panel) {
    PackKeyPanel(static_cast<const T*>(rows), stride, j0, tk, D, W, panel);
  }
#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
  template <class T>
  static void ScoreRowsOf(int mr, const void* rows, int64_t stride, const float* v,
                          int64_t v_stride, size_t j0, size_t tk, size_t D, size_t W,
                          const float* q, size_t ldq, float* s, size_t lds) {
    ScoreKeyRows(mr, static_cast<const T*>(rows), stride, v, v_stride, j0, tk, D, W, q, ldq, s,
                 lds);
  }
  template <class T>
  static KeyTile Rows(const T* k, int64_t stride) {
    return {nullptr, k, stride, &PackRows<T>, &ScoreRowsOf<T>};
  }
#else
  template <class T>
  static KeyTile Rows(const T* k, int64_t stride) {
    return {nullptr, k, stride, &PackRows<T>};
  }
#endif
  const float* Panel(size_t c, size_t tk, size_t D, size_t W, float* buf) const {
    if (packed) return packed + c * D;
    pack(rows, stride, c, tk, D, W, buf);
    return buf;
  }
};

// The values of a key tile as ValueBlock reads them: head dims [dc, dc + W) of key j at
// v + dc * panel_step + j * ld_wide (ld_narrow for the last, one-vector panel). Packed tiles
// (layout at PanelWidth) or float32 rows read in place; either way the same floats.
struct ValueTile {
  const float* v;
  size_t panel_step, ld_wide, ld_narrow;
  static ValueTile Packed(const float* vt, size_t N) {
    return {vt, size_t(kKeyTile), PanelWidth(N), N};
  }
  static ValueTile Rows(const float* v, size_t ld) { return {v, 1, ld, ld}; }
};

// Merges the key tile [t0, t1) (keys: K; values: V) into the running state of R
// rows: M, L [R] and O [R][Dp]. Rows are query-major, head-minor (G heads of one KV group): row r
// is the query at position pos0 + r / G; Q [R][Dp] holds the rows' scaled queries.
void TileUpdate(const AttentionArgs& a, int64_t pos0, int64_t G, int64_t R, const float* Q,
                const KeyTile& K, const ValueTile& V, int64_t t0, int64_t t1, TileScratch& sc,
                float* M, float* L, float* O) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const size_t colb = PanelWidth(N);  // key columns (or head dims) per microkernel call
  const size_t D = size_t(a.D), Dp = RoundUp(D, N), TK = size_t(kKeyTile);
  const size_t wide = Dp / colb * colb;  // head dims in full-width V panels; then one vector
  const int64_t nblk = (R + kMR - 1) / kMR;  // row blocks
  float* S = Scratch(sc.s, R * TK);  // the scores of the tile, rows TK apart
  float* A = Scratch(sc.alpha, R);
  float* Bt = Scratch(sc.beta, R);
  if (sc.c0.size() < size_t(nblk)) sc.c0.resize(nblk), sc.c1.resize(nblk);
  size_t* C0 = sc.c0.data();
  size_t* C1 = sc.c1.data();

  const size_t tk = size_t(t1 - t0);
  const bool full = attention_keys_all_visible(a, pos0, pos0 + (R - 1) / G, t0, t1);
  // The key columns [c0, c1) (whole panels) that some row of each block can see: a block
  // computes, masks and multiplies no others. The other rows' columns add exact zeros (in the
  // same lanes, panels start at multiples of colb), so a row's sums do not depend on its block.
  size_t lo_all = TK, hi_all = 0;
  for (int64_t blk = 0; blk < nblk; ++blk) {
    const int64_t r0 = blk * kMR, r1 = std::min<int64_t>(R, r0 + kMR);
    const AttentionKeyRange vis =
        bounding_range(a, pos0 + r0 / G, pos0 + (r1 - 1) / G, t0, t1);
    C0[blk] = C1[blk] = 0;
    if (vis.lo < vis.hi) {
      C0[blk] = size_t(vis.lo - t0) / colb * colb;
      C1[blk] = RoundUp(size_t(vis.hi - t0), colb);
      lo_all = std::min(lo_all, C0[blk]);
      hi_all = std::max(hi_all, C1[blk]);
    }
  }

  // S = Q K^T one key panel at a time, through every row block: the panel (D x W floats)
  // stays in L1 while the Q rows stream past it.
  // The few rows of decode score straight from the key rows where they can (KeyTile::score),
  // all rows at once: a row's scores of columns its block does not see are never read.
  const bool fused = K.score && R <= kScoreKeyRowsMax;
  float* panel_buf = K.packed || fused ? nullptr : Scratch(sc.panel, D * colb);
  for (size_t c = lo_all; c < hi_all; c += colb) {
    bool seen = false;
    for (int64_t blk = 0; blk < nblk; ++blk) seen = seen || (C0[blk] <= c && c < C1[blk]);
    if (!seen) continue;
    if (fused) {
      const bool v_rows = V.panel_step == 1;
      K.score(int(R), K.rows, K.stride, v_rows ? V.v : nullptr, int64_t(V.ld_wide), c, tk, D,
              colb, Q, Dp, S + c, TK);
      continue;
    }
    const float* panel = K.Panel(c, tk, D, colb, panel_buf);
    // Values read in place come from L3 or memory, like the keys: start their rows now, for the
    // P V below (a tile's rows fit in L2). The fused scores do it as they go.
    if (!K.packed && V.panel_step == 1) {
      for (size_t j = c; j < std::min(c + colb, tk); ++j) Prefetch(V.v + j * V.ld_wide, D);
    }
    for (int64_t blk = 0; blk < nblk; ++blk) {
      if (c < C0[blk] || c >= C1[blk]) continue;
      const int64_t r0 = blk * kMR;
      ScoreRows<kNR>(int(std::min<int64_t>(kMR, R - r0)), Q + r0 * Dp, Dp, panel, colb, D,
                     S + r0 * TK + c, TK);
    }
  }

  // Softcap, masks, the tile's softmax and the merge factors, row by row; a block whose rows all
  // see every key of the tile needs no element mask.
  for (int64_t blk = 0; blk < nblk; ++blk) {
    const size_t c0 = C0[blk], c1 = C1[blk];
    const int64_t r0 = blk * kMR, r1 = std::min<int64_t>(R, r0 + kMR);
    const bool masked = c0 < c1 && !full &&
                        !attention_keys_all_visible(a, pos0 + r0 / G, pos0 + (r1 - 1) / G, t0, t1);
    for (int64_t r = r0; r < r1; ++r) {
      float* s = S + r * TK;
      if (c0 < c1) {
        if (a.softcap > 0) SoftcapRow(s + c0, c1 - c0, a.softcap, a.softcap * kLog2e);
        if (masked) {
          const AttentionKeyRange rr = attention_main_range(a, pos0 + r / G);
          for (size_t jj = c0; jj < std::min(c1, tk); ++jj)
            if (!attention_key_visible(a, rr, t0 + int64_t(jj))) s[jj] = kNegInf;
        }
        if (tk < c1) std::fill(s + std::max(tk, c0), s + c1, kNegInf);  // padding past Tk
      }
      float m_t, l_t;
      TileSoftmax(s + c0, c1 - c0, m_t, l_t);
      MergeTile(M[r], L[r], m_t, l_t, A[r], Bt[r]);
    }
  }

  // O = alpha * O + beta * P V one panel of head dims at a time (W, then a last one of N),
  // through every row block. A block that sees no key of this tile is left as it is (its rows'
  // merge is the identity). Values read in place as rows (decode) by the few rows of decode
  // take two panels per call: twice the independent FMA chains (one or two rows alone wait on
  // the FMA latency) and half the broadcasts of P per FMA; each output is the same chain over
  // the keys either way.
  const bool two_panels = V.panel_step == 1 && R <= kWideValueRows;
  for (size_t dc = 0; dc < Dp;) {
    const size_t step = two_panels && dc + 2 * colb <= wide ? 2 * colb : colb;
    for (int64_t blk = 0; blk < nblk; ++blk) {
      const size_t j0 = C0[blk], j1 = std::min(C1[blk], tk);
      if (j0 >= j1) continue;
      const int64_t r0 = blk * kMR;
      const int mr = int(std::min<int64_t>(kMR, R - r0));
      if (step > colb) {
        ValueRows<2 * kNR>(mr, S + r0 * TK, TK, j0, j1, V.v + dc, V.ld_wide, O + r0 * Dp + dc,
                           Dp, A + r0, Bt + r0);
      } else if (dc < wide) {
        ValueRows<kNR>(mr, S + r0 * TK, TK, j0, j1, V.v + dc * V.panel_step, V.ld_wide,
                       O + r0 * Dp + dc, Dp,
                       A + r0, Bt + r0);
      } else {
        ValueRows<1>(mr, S + r0 * TK, TK, j0, j1, V.v + wide * V.panel_step, V.ld_narrow,
                     O + r0 * Dp + wide, Dp,
                     A + r0, Bt + r0);
      }
    }
    dc += step;
  }
}

// Converts one tile of tk keys and values of `heads` KV heads to float32 panels (layout at
// PanelWidth). k, v: head 0 of the tile's first key; rows k_stride apart, heads k_head apart. Head
// h's tiles go to kt + h * kKeyTile * D and vt + h * kKeyTile * RoundUp(D, N).
template <class T>
void PackTileT(const T* k, int64_t k_stride, int64_t k_head, const T* v, int64_t v_stride,
               int64_t v_head, int64_t heads, size_t tk, size_t D, size_t W,
               float* HWY_RESTRICT kt, float* HWY_RESTRICT vt) {  // kt or vt null: V or K only
  const size_t N = hn::Lanes(DF());
  const size_t TK = size_t(kKeyTile), DV = RoundUp(D, N), wide = DV / W * W;
  const size_t DW = RoundUp(D, W);
  // K: panel by panel, transposed in registers (PackKeyPanel); panels past the last key are zero
  // (zero scores for the columns past the tile's end).
  for (int64_t h = 0; kt && h < heads; ++h) {
    for (size_t p = 0; p < TK; p += W) {
      float* panel = kt + size_t(h) * TK * D + p * D;
      if (p < tk) {
        PackKeyPanel(k + h * k_head, k_stride, p, tk, D, W, panel);
      } else {
        std::fill(panel, panel + D * W, 0.0f);
      }
    }
  }
  if (!vt) return;
  static thread_local std::vector<float> row_buf;
  float* row = Scratch(row_buf, DW);
  std::fill(row, row + DW, 0.0f);
  for (size_t jj = 0; jj < tk; ++jj) {
    for (int64_t h = 0; h < heads; ++h) {
      const T* src = v + h * v_head + int64_t(jj) * v_stride;
      Prefetch(src + int64_t(kPrefetchRows) * v_stride, D);
      RowToF32(src, D, 1.0f, row);
      float* vh = vt + size_t(h) * TK * DV;
      for (size_t pd = 0; pd < wide / W; ++pd)
        std::memcpy(vh + (pd * TK + jj) * W, row + pd * W, W * sizeof(float));
      if (wide < DV) std::memcpy(vh + wide * TK + jj * N, row + wide, N * sizeof(float));
    }
  }
}

// The R = Tq * G rows of KV head kvh's group (query-major, head-minor), converted to float32 and
// scaled (QueryScale), Dp floats apart.
template <class T>
void LoadQueries(const AttentionArgs& a, int64_t b, int64_t kvh, int64_t i0, int64_t i1,
                 size_t Dp, float* Q) {
  const int64_t G = a.Hq / a.Hkv;
  const T* qb = static_cast<const T*>(a.q) + b * a.q_stride[0];
  for (int64_t r = 0; r < (i1 - i0) * G; ++r) {
    const int64_t i = i0 + r / G, h = kvh * G + r % G;
    RowToF32(qb + i * a.q_stride[1] + h * a.q_stride[2], size_t(a.D), QueryScale(a), Q + r * Dp);
  }
}

// ---- prefill: tiled online softmax -------------------------------------------------------------

struct PrefillScratch {
  std::vector<float> q, o, m, l;
  TileScratch tile;
};

template <class T>
void PrefillTask(const AttentionArgs& a, const PackedKV& kv, int64_t b, int64_t kvh, int64_t i0,
                 int64_t i1) {
  static thread_local PrefillScratch sc;
  const size_t N = hn::Lanes(DF());
  const int64_t G = a.Hq / a.Hkv;
  const size_t D = size_t(a.D), Dp = RoundUp(D, N), TK = size_t(kKeyTile);
  const int64_t R = (i1 - i0) * G;  // rows: query-major, head-minor

  float* Q = Scratch(sc.q, R * Dp);
  float* O = Scratch(sc.o, R * Dp);
  float* M = Scratch(sc.m, R);
  float* L = Scratch(sc.l, R);
  LoadQueries<T>(a, b, kvh, i0, i1, Dp, Q);
  std::fill(O, O + R * Dp, 0.0f);
  std::fill(M, M + R, kNegInf);
  std::fill(L, L + R, 0.0f);

  const int64_t kv_tiles = (b * a.Hkv + kvh) * kv.tiles;
  const int64_t p0 = a.q_start + i0, p1 = a.q_start + i1 - 1;
  const AttentionKeyRange span = bounding_range(a, p0, p1, 0, a.Tk);
  for (int64_t t0 = span.lo / kKeyTile * kKeyTile; t0 < span.hi; t0 += kKeyTile) {
    const int64_t t1 = std::min(t0 + kKeyTile, a.Tk);
    const AttentionKeyRange tile = bounding_range(a, p0, p1, t0, t1);
    if (tile.lo >= tile.hi) continue;  // no query of this task sees this tile
    const int64_t ti = kv_tiles + t0 / kKeyTile - kv.first_tile;
    TileUpdate(a, p0, G, R, Q, KeyTile::Packed(kv.kt + ti * D * TK),
               ValueTile::Packed(kv.vt + ti * TK * Dp, N), t0, t1, sc.tile, M, L, O);
  }

  T* ob = static_cast<T*>(a.out) + b * a.out_stride[0];
  for (int64_t r = 0; r < R; ++r) {
    const int64_t i = i0 + r / G, h = kvh * G + r % G;
    RowFromF32(O + r * Dp, D, OutputScale(a, a.q_start + i, L[r]),
               ob + i * a.out_stride[1] + h * a.out_stride[2]);
  }
}

void Prefill(const AttentionArgs& a, const PackedKV& kv, int64_t b, int64_t kvh, int64_t i0,
             int64_t i1) {
  visit_float(a.dtype, [&](auto tag) { PrefillTask<decltype(tag)>(a, kv, b, kvh, i0, i1); });
}

// Packs tile `tile` (counted from kv.first_tile) of (b, kvh).
void PackTile(const AttentionArgs& a, const PackedKV& kv, int64_t b, int64_t kvh, int64_t tile) {
  const size_t N = hn::Lanes(DF());
  const size_t D = size_t(a.D), W = PanelWidth(N), TK = size_t(kKeyTile);
  const int64_t t0 = (kv.first_tile + tile) * kKeyTile, tk = std::min(kKeyTile, a.Tk - t0);
  const int64_t ti = (b * a.Hkv + kvh) * kv.tiles + tile;
  visit_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* k = static_cast<const T*>(a.k) + b * a.k_stride[0] + kvh * a.k_stride[2] +
                 t0 * a.k_stride[1];
    const T* v = static_cast<const T*>(a.v) + b * a.v_stride[0] + kvh * a.v_stride[2] +
                 t0 * a.v_stride[1];
    PackTileT(k, a.k_stride[1], 0, v, a.v_stride[1], 0, 1, size_t(tk), D, W,
              kv.kt + ti * TK * D, kv.vt + ti * TK * RoundUp(D, N));
  });
}

// ---- decode: split-K tile partials and their merge ---------------------------------------------

// One partial per (batch row, chunk of kDecodeTiles key tiles), computed by the same TileUpdate
// as prefill, each tile from a fresh state: m_t, l_t and o_t exactly as prefill would merge them.
// Layout of a chunk's partial: per tile, O [RT][Dp] (not normalised), then m [RT], then l [RT];
// rows KV head major, then query, then head of the group (RT = Tq * Hq).
template <class T>
void DecodeChunkTask(const AttentionArgs& a, int64_t b, int64_t c, float* part) {
  struct DecodeScratch {
    std::vector<float> q, vt;
    TileScratch tile;
  };
  static thread_local DecodeScratch sc;
  const size_t N = hn::Lanes(DF());
  const int64_t G = a.Hq / a.Hkv, R = a.Tq * G, RT = a.Tq * a.Hq;
  const size_t D = size_t(a.D), Dp = RoundUp(D, N), TK = size_t(kKeyTile);
  const size_t tile_size = size_t(RT) * (Dp + 2);

  float* Q = nullptr;
  for (int64_t t = 0; t < kDecodeTiles; ++t) {
    float* O = part + t * tile_size;
    float* M = O + RT * Dp;
    float* L = M + RT;
    std::fill(O, O + RT * Dp, 0.0f);
    std::fill(M, M + RT, kNegInf);
    std::fill(L, L + RT, 0.0f);
    const int64_t t0 = (c * kDecodeTiles + t) * kKeyTile, t1 = std::min(t0 + kKeyTile, a.Tk);
    if (t0 >= t1) continue;
    const AttentionKeyRange vis = bounding_range(a, a.q_start, a.q_start + a.Tq - 1, t0, t1);
    if (vis.lo >= vis.hi) continue;  // tile invisible to every query
    if (!Q) {
      Q = Scratch(sc.q, RT * Dp);
      for (int64_t kvh = 0; kvh < a.Hkv; ++kvh) LoadQueries<T>(a, b, kvh, 0, a.Tq, Dp, Q + kvh * R * Dp);
    }
    // Keys are read from the cache rows, a panel at a time (KeyTile::Rows). Float32 values
    // whose rows are whole vectors are read in place; others are converted, every head's in
    // one pass (the heads of a key are adjacent in memory).
    constexpr bool kFloat = std::is_same_v<T, float>;
    const bool v_rows = kFloat && D % N == 0;
    float* Vt = v_rows ? nullptr : Scratch(sc.vt, size_t(a.Hkv) * TK * Dp);
    const T* k = static_cast<const T*>(a.k) + b * a.k_stride[0] + t0 * a.k_stride[1];
    const T* v = static_cast<const T*>(a.v) + b * a.v_stride[0] + t0 * a.v_stride[1];
    if (!v_rows) {
      PackTileT(k, a.k_stride[1], a.k_stride[2], v, a.v_stride[1], a.v_stride[2], a.Hkv,
                size_t(t1 - t0), D, PanelWidth(N), static_cast<float*>(nullptr), Vt);
    }
    for (int64_t kvh = 0; kvh < a.Hkv; ++kvh) {
      ValueTile V{};
      if constexpr (kFloat) {
        if (v_rows) V = ValueTile::Rows(v + kvh * a.v_stride[2], size_t(a.v_stride[1]));
      }
      if (!v_rows) V = ValueTile::Packed(Vt + kvh * TK * Dp, N);
      TileUpdate(a, a.q_start, G, R, Q + kvh * R * Dp,
                 KeyTile::Rows(k + kvh * a.k_stride[2], a.k_stride[1]), V, t0, t1, sc.tile,
                 M + kvh * R, L + kvh * R, O + kvh * R * Dp);
    }
  }
}

void DecodeChunk(const AttentionArgs& a, int64_t b, int64_t c, float* part) {
  visit_float(a.dtype, [&](auto tag) { DecodeChunkTask<decltype(tag)>(a, b, c, part); });
}

// The output rows of (b, kvh): the tile partials of batch b's chunks merged in key order, with
// the formula that prefill merges its tiles by (MergeTile, and ValueBlock's last step).
template <class T>
void DecodeCombineTask(const AttentionArgs& a, int64_t b, int64_t kvh, int64_t chunks,
                       const float* parts, size_t part_size) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const int64_t G = a.Hq / a.Hkv, R = a.Tq * G, RT = a.Tq * a.Hq;
  const size_t D = size_t(a.D), Dp = RoundUp(D, N);
  const size_t tile_size = part_size / kDecodeTiles;
  static thread_local std::vector<float> acc_buf;
  float* acc = Scratch(acc_buf, Dp);
  T* ob = static_cast<T*>(a.out) + b * a.out_stride[0];
  for (int64_t r = kvh * R; r < (kvh + 1) * R; ++r) {
    float m = kNegInf, l = 0.0f;
    std::fill(acc, acc + Dp, 0.0f);
    for (int64_t t = 0; t < chunks * kDecodeTiles; ++t) {
      const float* p = parts + t * tile_size;
      const float m_t = p[RT * Dp + r];
      float alpha, beta;
      MergeTile(m, l, m_t, p[RT * Dp + RT + r], alpha, beta);
      if (m_t == kNegInf) continue;
      const auto va = hn::Set(df, alpha), vb = hn::Set(df, beta);
      for (size_t d = 0; d < Dp; d += N) {
        const auto old = hn::Mul(hn::LoadU(df, acc + d), va);
        hn::StoreU(hn::MulAdd(hn::LoadU(df, p + r * Dp + d), vb, old), df, acc + d);
      }
    }
    const int64_t i = (r % R) / G, h = kvh * G + r % G;
    RowFromF32(acc, D, OutputScale(a, a.q_start + i, l),
               ob + i * a.out_stride[1] + h * a.out_stride[2]);
  }
}

void DecodeCombine(const AttentionArgs& a, int64_t b, int64_t kvh, int64_t chunks,
                   const float* parts, size_t part_size) {
  visit_float(a.dtype, [&](auto tag) {
    DecodeCombineTask<decltype(tag)>(a, b, kvh, chunks, parts, part_size);
  });
}

size_t Lanes() { return hn::Lanes(DF()); }
// Floats per packed K tile and per packed V tile.
size_t PackedKTile(size_t D) { return size_t(kKeyTile) * D; }
size_t PackedVTile(size_t D) { return size_t(kKeyTile) * RoundUp(D, hn::Lanes(DF())); }

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(Prefill);
HWY_EXPORT(PackTile);
HWY_EXPORT(DecodeChunk);
HWY_EXPORT(DecodeCombine);
HWY_EXPORT(Lanes);
HWY_EXPORT(PackedKTile);
HWY_EXPORT(PackedVTile);

namespace {

void zero_output(const AttentionArgs& a) {
  const int es = dtype_size(a.dtype);
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t i = 0; i < a.Tq; ++i)
      for (int64_t h = 0; h < a.Hq; ++h)
        std::memset(static_cast<char*>(a.out) +
                        (b * a.out_stride[0] + i * a.out_stride[1] + h * a.out_stride[2]) * es,
                    0, size_t(a.D) * es);  // all-zero bits are +0 in every float format
}

// Memory for the packed K/V tiles. Fresh pages cost a fault and a zeroing each (several percent
// of a short prefill), so one buffer of up to kPackCacheFloats is kept between calls; a call
// that finds it in use by another thread, or needs more, allocates its own.
constexpr size_t kPackCacheFloats = size_t(16) << 20;  // 64 MiB
// attention_varlen's groups of prefill entries: packed floats per thread (1 MiB, a core's L2).
constexpr size_t kPackFloatsPerThread = size_t(1) << 18;
class PackBuffer {
 public:
  explicit PackBuffer(size_t n) : lock_(mutex(), std::try_to_lock) {
    if (lock_.owns_lock() && n <= kPackCacheFloats) {
      if (cache_size() < n) {
        cache() = hwy::AllocateAligned<float>(n);
        cache_size() = n;
      }
      data_ = cache().get();
      return;
    }
    if (lock_.owns_lock()) lock_.unlock();
    own_ = hwy::AllocateAligned<float>(n);
    data_ = own_.get();
  }
  float* data() const { return data_; }

 private:
  static std::mutex& mutex() { static std::mutex m; return m; }
  static hwy::AlignedFreeUniquePtr<float[]>& cache() {
    static hwy::AlignedFreeUniquePtr<float[]> c(nullptr, hwy::AlignedFreer());
    return c;
  }
  static size_t& cache_size() { static size_t n = 0; return n; }
  std::unique_lock<std::mutex> lock_;
  hwy::AlignedFreeUniquePtr<float[]> own_{nullptr, hwy::AlignedFreer()};
  float* data_ = nullptr;
};

// The work of one prefill entry of attention_varlen: its packed K/V tiles and its query blocks.
struct PrefillEntry {
  const AttentionArgs* a = nullptr;
  attn::PackedKV kv;             // kt and vt point into the call's PackBuffer
  size_t k_size = 0, v_size = 0;  // floats of its packed K and V tiles
  int64_t qb = 0, nqb = 0;       // queries per task; tasks per (batch, KV head)
};

PrefillEntry plan_prefill(const AttentionArgs& a, const AttentionKeyRange& span) {
  PrefillEntry e;
  e.a = &a;
  // Only the tiles that some query sees are converted, once, shared by all query blocks (rather
  // than once per block).
  e.kv.first_tile = span.lo / attn::kKeyTile;
  e.kv.tiles = (span.hi + attn::kKeyTile - 1) / attn::kKeyTile - e.kv.first_tile;
  const int64_t all_tiles = a.B * a.Hkv * e.kv.tiles;
  e.k_size = size_t(all_tiles) * HWY_DYNAMIC_DISPATCH(PackedKTile)(size_t(a.D));
  e.v_size = size_t(all_tiles) * HWY_DYNAMIC_DISPATCH(PackedVTile)(size_t(a.D));
  const int64_t G = a.Hq / a.Hkv;
  // Queries per task: about kRowsPerTask rows, and a whole number of row blocks where the group
  // size allows, so that a partial (slower) row block only ends the last task of a sequence.
  const int64_t step = attn::kRowBlock / std::gcd(G, attn::kRowBlock);
  e.qb = std::max(step, attn::kRowsPerTask / G / step * step);
  e.nqb = (a.Tq + e.qb - 1) / e.qb;
  return e;
}

int64_t pack_tasks(const PrefillEntry& e) { return e.a->B * e.a->Hkv * e.kv.tiles; }
void pack_task(const PrefillEntry& e, int64_t task) {
  const int64_t bh = task / e.kv.tiles;
  HWY_DYNAMIC_DISPATCH(PackTile)(*e.a, e.kv, bh / e.a->Hkv, bh % e.a->Hkv, task % e.kv.tiles);
}

// Tasks run one (batch, KV head) after another, so that the threads share that head's packed K
// and V in the cache (taking the heads in turn instead streams every head's K/V, 38 MB for SigLIP
// at 896 px, from memory for each task; measured 1.6x slower). Within a head, later query blocks
// see more keys under a causal mask: they go first, so that the last tasks to run are short ones
// and no thread idles long at the end.
int64_t prefill_tasks(const PrefillEntry& e) { return e.a->B * e.a->Hkv * e.nqb; }
void prefill_task(const PrefillEntry& e, int64_t task) {
  const AttentionArgs& a = *e.a;
  const int64_t blk = e.nqb - 1 - task % e.nqb, bh = task / e.nqb;
  const int64_t i0 = blk * e.qb, i1 = std::min(a.Tq, i0 + e.qb);
  HWY_DYNAMIC_DISPATCH(Prefill)(a, e.kv, bh / a.Hkv, bh % a.Hkv, i0, i1);
}

// The work of one decode (split-K) entry: a partial per (batch, key chunk), then one combine per
// (batch, KV head).
struct DecodeEntry {
  const AttentionArgs* a = nullptr;
  int64_t chunks = 0;
  size_t part_size = 0;    // floats of one partial
  float* parts = nullptr;  // [B][chunks] partials, in the call's buffer
  std::atomic<int64_t>* unfinished = nullptr;  // [B]: chunks of each batch row still running
};

DecodeEntry plan_decode(const AttentionArgs& a) {
  DecodeEntry e;
  e.a = &a;
  const size_t N = HWY_DYNAMIC_DISPATCH(Lanes)();
  const size_t Dp = (size_t(a.D) + N - 1) / N * N;
  e.part_size = size_t(attn::kDecodeTiles) * size_t(a.Tq * a.Hq) * (Dp + 2);
  e.chunks = (a.Tk + attn::kDecodeChunk - 1) / attn::kDecodeChunk;
  return e;
}

// The partial of one (batch row, chunk); the task that finishes a row's last chunk, whichever it
// is, then merges that row's partials. The merge reads them in chunk order, so its result does
// not depend on which thread runs it; the acquire-release countdown makes the other chunks'
// partials visible to it. A separate parallel region for the merges would cost more than they do
// (a few rows of D floats per chunk).
int64_t chunk_tasks(const DecodeEntry& e) { return e.a->B * e.chunks; }
void chunk_task(const DecodeEntry& e, int64_t task) {
  const AttentionArgs& a = *e.a;
  const int64_t b = task / e.chunks;
  HWY_DYNAMIC_DISPATCH(DecodeChunk)(a, b, task % e.chunks, e.parts + task * e.part_size);
  if (e.unfinished[b].fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  for (int64_t kvh = 0; kvh < a.Hkv; ++kvh)
    HWY_DYNAMIC_DISPATCH(DecodeCombine)(a, b, kvh, e.chunks, e.parts + b * e.chunks * e.part_size,
                                        e.part_size);
}

// The tasks of several entries laid end to end, entry after entry, so that one parallel_for runs
// them all.
class TaskRanges {
 public:
  template <class Entry, class Count>
  TaskRanges(const Entry* entries, size_t n, Count count) {
    start_.reserve(n + 1);
    start_.push_back(0);
    for (size_t i = 0; i < n; ++i) start_.push_back(start_.back() + count(entries[i]));
  }
  int64_t total() const { return start_.back(); }
  // The entry that owns `task` and the task's index within that entry.
  std::pair<size_t, int64_t> find(int64_t task) const {
    const size_t e = size_t(std::upper_bound(start_.begin(), start_.end(), task) - start_.begin());
    return {e - 1, task - start_[e - 1]};
  }

 private:
  std::vector<int64_t> start_;
};

// Partials and countdowns for every decode entry, in one buffer each.
class DecodeBuffers {
 public:
  explicit DecodeBuffers(std::vector<DecodeEntry>& decode) {
    if (decode.empty()) return;
    size_t floats = 0;
    int64_t rows = 0;
    for (const DecodeEntry& e : decode) {
      floats += size_t(chunk_tasks(e)) * e.part_size;
      rows += e.a->B;
    }
    parts_ = hwy::AllocateAligned<float>(floats);
    unfinished_.reset(new std::atomic<int64_t>[size_t(rows)]);
    float* part = parts_.get();
    std::atomic<int64_t>* row = unfinished_.get();
    for (DecodeEntry& e : decode) {
      e.parts = part;
      part += size_t(chunk_tasks(e)) * e.part_size;
      e.unfinished = row;
      for (int64_t b = 0; b < e.a->B; ++b) row[b].store(e.chunks, std::memory_order_relaxed);
      row += e.a->B;
    }
  }

 private:
  hwy::AlignedFreeUniquePtr<float[]> parts_{nullptr, hwy::AlignedFreer()};
  std::unique_ptr<std::atomic<int64_t>[]> unfinished_;
};

// Prefill entries [0, n_prefill) and decode entries [0, n_decode) in two parallel regions:
// (a) every prefill entry's K/V tiles packed into one buffer, entry after entry, its K tiles then
// its V; (b) every prefill query block, then every decode chunk's partial (and merge).
void run_together(PrefillEntry* prefill, size_t n_prefill, DecodeEntry* decode,
                  size_t n_decode) {
  size_t pack_floats = 0;
  for (size_t i = 0; i < n_prefill; ++i) pack_floats += prefill[i].k_size + prefill[i].v_size;
  std::optional<PackBuffer> pack;
  if (n_prefill > 0) {
    pack.emplace(pack_floats);
    float* next = pack->data();
    for (size_t i = 0; i < n_prefill; ++i) {
      PrefillEntry& e = prefill[i];
      e.kv.kt = next;
      e.kv.vt = next + e.k_size;
      next += e.k_size + e.v_size;
    }
    const TaskRanges packs(prefill, n_prefill, pack_tasks);
    parallel_for(packs.total(), [&](int64_t task, int) {
      const auto [e, t] = packs.find(task);
      pack_task(prefill[e], t);
    });
  }
  const TaskRanges blocks(prefill, n_prefill, prefill_tasks);
  const TaskRanges chunks(decode, n_decode, chunk_tasks);
  parallel_for(blocks.total() + chunks.total(), [&](int64_t task, int) {
    if (task < blocks.total()) {
      const auto [e, t] = blocks.find(task);
      prefill_task(prefill[e], t);
    } else {
      const auto [e, t] = chunks.find(task - blocks.total());
      chunk_task(decode[e], t);
    }
  });
}

}  // namespace

void attention(const AttentionArgs& a) { attention_varlen(&a, 1); }

// Every task below is the one that a call of attention() on its entry alone would run, with the
// same arguments (an entry's packed tiles hold the same floats wherever they sit in the buffer),
// and writes only that entry's output or its own partial: sharing the parallel regions changes
// which thread runs a task and when, never its bits. A decode entry's merges run in the same
// region as its partials (see chunk_task), so a batch of decode steps is one region.
void attention_varlen(const AttentionArgs* seqs, int64_t n) {
  std::vector<PrefillEntry> prefill;
  std::vector<DecodeEntry> decode;
  std::vector<const AttentionArgs*> zeros;
  for (int64_t i = 0; i < n; ++i) {
    const AttentionArgs& a = seqs[i];
    if (a.B == 0 || a.Tq == 0 || a.Hq == 0 || a.D == 0) continue;
    if (a.Tk == 0) {
      zeros.push_back(&a);
    } else if (a.Tq <= attn::kDecodeMaxQueries) {
      decode.push_back(plan_decode(a));
    } else {
      const AttentionKeyRange span =
          attn::bounding_range(a, a.q_start, a.q_start + a.Tq - 1, 0, a.Tk);
      if (span.lo >= span.hi) {
        zeros.push_back(&a);
      } else {
        prefill.push_back(plan_prefill(a, span));
      }
    }
  }
  // The panels of a K tile must tile it exactly (true for vectors up to 1024 bits).
  GC_CHECK(prefill.empty() || attn::kKeyTile % (2 * HWY_DYNAMIC_DISPATCH(Lanes)()) == 0,
           NotImplementedError, "attention: the CPU kernel does not support this vector length");
  for (const AttentionArgs* a : zeros) zero_output(*a);

  DecodeBuffers decode_buffers(decode);
  // Prefill entries run in groups of about one L2 of packed tiles per thread, so that the tiles
  // are still in the caches when the query blocks read them: packing 32 sequences of 64 tokens
  // (8 MiB of tiles) before computing any measured 6% slower than one call per sequence on one
  // thread, groups of 1 MiB 1-5% faster. Groups also stay within the PackBuffer kept between
  // calls, whose pages are not fresh each time (SigLIP's images would need 40 MB each); an entry
  // larger than a group is a group of its own, as its single call is. The decode work joins the
  // first group. The grouping changes when tasks run, not what they compute.
  const size_t group_floats =
      std::min(kPackCacheFloats, size_t(get_num_threads()) * kPackFloatsPerThread);
  auto packed_floats = [&](size_t i) { return prefill[i].k_size + prefill[i].v_size; };
  size_t first = 0;
  do {
    size_t end = first, floats = 0;
    while (end < prefill.size() &&
           (end == first || floats + packed_floats(end) <= group_floats)) {
      floats += packed_floats(end++);
    }
    const bool with_decode = first == 0;
    run_together(prefill.data() + first, end - first, with_decode ? decode.data() : nullptr,
                 with_decode ? decode.size() : 0);
    first = end;
  } while (first < prefill.size());
}

}  // namespace gemmacpp::cpu
#endif
