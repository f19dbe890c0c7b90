// linear: out = x @ w.T (+ bias). One arithmetic for every output element, whatever M: a row of
// the output is bitwise the same computed alone (decode), in a batch of any size (prefill, ragged
// batches, last_only heads) and on any thread count. Each element is a dot product over k with
// one lane-parallel accumulator and one horizontal sum (gemm-inl.h's DotTile); tiles of R rows
// of x times C weight rows only share the loads between elements, never their sums. Tasks
// (gemm_tiling.h's for_each_row_tile) own blocks of up to 64 rows of x times ~64 KiB of weight
// rows and never split K. Decode streams each weight row from memory once; with more rows, each
// group of R rows of x runs over the task's weight rows while they sit in L2.
#include "csrc/cpu/linear.h"

#include <algorithm>

#include "csrc/core/threads.h"
#include "csrc/cpu/gemm_tiling.h"
#include "csrc/cpu/dtype_dispatch.h"
#include "hwy/aligned_allocator.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/linear.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "csrc/cpu/simd-inl.h"
#include "csrc/cpu/gemm-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

constexpr size_t kMatvecLongRowBytes = 4096;

// Tiles of kTileRows rows of x times kTileCols weight rows: AVX-512's 32 registers hold 4 x 4
// accumulators beside 4 x and 4 weight vectors; 16-register targets take 2 x 4.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr size_t kTileRows = 4;
#else
constexpr size_t kTileRows = 2;
#endif
constexpr size_t kTileCols = 4;

// R rows of x times `rows` weight rows, kTileCols at a time.
template <size_t R, class T>
HWY_INLINE void RowsTimesBlock(const float* x, size_t ldx, size_t K, const T* w, size_t ldw,
                               size_t rows, const float* bias, float* out, size_t ldo) {
  constexpr size_t C = kTileCols;
  for (size_t c0 = 0; c0 < rows; c0 += C) {
    const size_t cols = std::min(C, rows - c0);
    float dot[R * C];
    DotTile<R, C>(x, ldx, w + c0 * ldw, ldw, cols, K, dot, C);
    for (size_t r = 0; r < R; ++r) {
      float* o = out + r * ldo + c0;
      for (size_t c = 0; c < cols; ++c) o[c] = bias ? dot[r * C + c] + bias[c0 + c] : dot[r * C + c];
    }
  }
}

// M rows of x against `rows` weight rows (w points at the first); out and bias point at the
// first of these output columns.
void LinearTile(DType wdt, const float* x, size_t ldx, size_t M, size_t K, const void* w,
                size_t ldw, size_t rows, const float* bias, float* out, size_t ldo) {
  visit_float(wdt, [&](auto tag) {
    using T = decltype(tag);
    const T* wt = static_cast<const T*>(w);
    // One x row and short weight rows: read the rows one after another, a single sequential
    // stream. Four interleaved row streams only pay off once rows are long enough for the
    // prefetchers to run ahead on each (measured on this EPYC from DRAM: K = 640 bf16 rows
    // 12 GB/s as one stream vs 7.5 as four; K = 9216 f32 rows 15 vs 20 GB/s).
    if (M == 1 && K * sizeof(T) < kMatvecLongRowBytes) {
      for (size_t r = 0; r < rows; ++r) {
        float d;
        DotTile<1, 1>(x, ldx, wt + r * ldw, ldw, 1, K, &d, 1);
        out[r] = bias ? d + bias[r] : d;
      }
      return;
    }
    for (size_t m0 = 0; m0 < M; m0 += kTileRows) {
      const float* xm = x + m0 * ldx;
      float* om = out + m0 * ldo;
      switch (std::min(kTileRows, M - m0)) {
        case 1: RowsTimesBlock<1>(xm, ldx, K, wt, ldw, rows, bias, om, ldo); break;
        case 2: RowsTimesBlock<2>(xm, ldx, K, wt, ldw, rows, bias, om, ldo); break;
        case 3: RowsTimesBlock<3>(xm, ldx, K, wt, ldw, rows, bias, om, ldo); break;
        default: RowsTimesBlock<4>(xm, ldx, K, wt, ldw, rows, bias, om, ldo); break;
      }
    }
  });
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(LinearTile);

void linear(const float* x, int64_t ldx, int64_t M, int64_t K, DType wdt, const void* w,
            int64_t ldw, int64_t N, const float* bias, float* out, int64_t ldo) {
  if (M <= 0 || N <= 0) return;
  const int64_t es = dtype_size(wdt);
  const char* wb = static_cast<const char*>(w);
  gemm::for_each_row_tile(M, N, K * es, [&](int64_t m0, int64_t mb, int64_t n0, int64_t nb) {
    HWY_DYNAMIC_DISPATCH(LinearTile)(wdt, x + m0 * ldx, ldx, mb, K, wb + n0 * ldw * es, ldw, nb,
                                     bias ? bias + n0 : nullptr, out + m0 * ldo + n0, ldo);
  });
}

}  // namespace gemmacpp::cpu
#endif
