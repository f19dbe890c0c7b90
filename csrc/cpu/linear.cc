// linear: out = x @ w.T (+ bias). Two paths, chosen by the number of rows of x alone:
// - matrix-vector (M <= kMatvecMaxRows): bound by the weight bytes, so the weight rows are streamed
//   from memory once, in order; with several rows of x, each block of four weight rows serves
//   every row of x while it sits in L1;
// - blocked GEMM: each task owns an (M block, N block) tile of the output, packs kb-long slices of
//   its weight rows into float32 panels, and runs the register-blocked microkernel over them.
// Neither path splits K between tasks, and each output element is accumulated in an order fixed by
// K, so the result is bitwise the same for any thread count.
#include "csrc/cpu/linear.h"

#include <algorithm>

#include "csrc/core/threads.h"
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

// `rows` weight rows (w points at the first) against all M rows of x; out and bias point at the
// first of these output columns.
void MatvecBlock(DType wdt, const float* x, size_t ldx, size_t M, size_t K, const void* w,
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
        const float d = Dot1(x, wt + r * ldw, K);
        out[r] = bias ? d + bias[r] : d;
      }
      return;
    }
    for (size_t r0 = 0; r0 < rows; r0 += 4) {
      // A short last group repeats its last row; the duplicate results are dropped.
      const auto row = [&](size_t i) { return wt + std::min(r0 + i, rows - 1) * ldw; };
      const size_t valid = std::min<size_t>(4, rows - r0);
      for (size_t m = 0; m < M; ++m) {
        float dot[4];
        Dot4(x + m * ldx, row(0), row(1), row(2), row(3), K, dot);
        float* o = out + m * ldo + r0;
        for (size_t i = 0; i < valid; ++i) o[i] = bias ? dot[i] + bias[r0 + i] : dot[i];
      }
    }
  });
}

// One output tile: mb rows of x (from x) times nb weight rows (from w), into out (ldo apart).
// K is taken kb_max columns at a time: pack that slice of the nb weight rows, then run every
// (strip, row group) microkernel over it, accumulating into a float32 tile in scratch.
void GemmTile(DType wdt, const float* x, size_t ldx, size_t mb, size_t K, const void* w,
              size_t ldw, size_t nb, size_t kb_max, const float* bias, float* out, size_t ldo) {
  const size_t NR = GemmNR();
  const size_t strips = (nb + NR - 1) / NR, ldc = strips * NR;
  const size_t kb_cap = std::min(kb_max, std::max<size_t>(K, 1));
  const size_t need = mb * ldc + strips * NR * kb_cap;
  // Per-thread scratch (accumulator tile + packed panel), grown on demand and reused.
  static thread_local hwy::AlignedFreeUniquePtr<float[]> scratch;
  static thread_local size_t capacity = 0;
  if (capacity < need) {
    scratch = hwy::AllocateAligned<float>(need);
    capacity = need;
  }
  float* HWY_RESTRICT c = scratch.get();
  float* HWY_RESTRICT panel = c + mb * ldc;  // ldc is a multiple of NR: panel stays aligned
  std::fill(c, c + mb * ldc, 0.0f);
  visit_float(wdt, [&](auto tag) {
    using T = decltype(tag);
    const T* wt = static_cast<const T*>(w);
    for (size_t k0 = 0; k0 < K; k0 += kb_max) {
      const size_t kb = std::min(kb_max, K - k0);
      PackPanel(wt + k0, ldw, nb, kb, panel);
      // Strip-outer: the strip's panel (kb x NR floats) stays in L1 across the row groups.
      for (size_t s = 0; s < strips; ++s) {
        for (size_t r0 = 0; r0 < mb; r0 += kGemmMR) {
          GemmMicroTileRows(std::min(kGemmMR, mb - r0), x + r0 * ldx + k0, ldx,
                            panel + s * kb * NR, kb, c + r0 * ldc + s * NR, ldc);
        }
      }
    }
  });
  for (size_t r = 0; r < mb; ++r) {
    const float* cr = c + r * ldc;
    float* o = out + r * ldo;
    if (bias) {
      for (size_t n = 0; n < nb; ++n) o[n] = cr[n] + bias[n];
    } else {
      std::copy(cr, cr + nb, o);
    }
  }
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(MatvecBlock);
HWY_EXPORT(GemmTile);

namespace {
// Matrix-vector tasks hold about this many weight bytes: big enough to amortise the task, small
// enough to balance the threads.
constexpr int64_t kMatvecTaskBytes = 64 << 10;
// GEMM tiling. Rows of x per tile: M is cut into ceil(M / kGemmMaxRows) near-equal blocks, rounded
// up to the microkernel's 6 rows. Weight rows per tile: kGemmCols. K slice packed at a time:
// kGemmK. The packed panel (64 x 256 floats = 64 KiB) stays in L2 and one strip of it (16 KiB on
// AVX2) in L1; the x block (<= 512 x 256 floats) is read once per strip, 6 floats per 12 FMAs,
// which L2/L3 sustain. Bigger row blocks amortise the packing over more rows (measured +5% for
// 512 over 256 rows on this EPYC, 512 KiB L2 per core).
constexpr int64_t kGemmMaxRows = 512, kGemmRowGroup = 6, kGemmCols = 64, kGemmK = 256;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

void linear(const float* x, int64_t ldx, int64_t M, int64_t K, DType wdt, const void* w,
            int64_t ldw, int64_t N, const float* bias, float* out, int64_t ldo) {
  if (M <= 0 || N <= 0) return;
  const int64_t es = dtype_size(wdt);
  const char* wb = static_cast<const char*>(w);
  if (M <= kMatvecMaxRows) {
    const int64_t rows = std::max<int64_t>(4, ceil_div(kMatvecTaskBytes / std::max<int64_t>(K * es, 1), 4) * 4);
    parallel_for(ceil_div(N, rows), [&](int64_t t, int) {
      const int64_t n0 = t * rows, nb = std::min(rows, N - n0);
      HWY_DYNAMIC_DISPATCH(MatvecBlock)(wdt, x, ldx, M, K, wb + n0 * ldw * es, ldw, nb,
                                        bias ? bias + n0 : nullptr, out + n0, ldo);
    });
    return;
  }
  const int64_t m_blocks = ceil_div(M, kGemmMaxRows);
  const int64_t mb_size = ceil_div(ceil_div(M, m_blocks), kGemmRowGroup) * kGemmRowGroup;
  const int64_t n_blocks = ceil_div(N, kGemmCols);
  parallel_for(ceil_div(M, mb_size) * n_blocks, [&](int64_t t, int) {
    const int64_t m0 = (t / n_blocks) * mb_size, n0 = (t % n_blocks) * kGemmCols;
    const int64_t mb = std::min(mb_size, M - m0), nb = std::min(kGemmCols, N - n0);
    HWY_DYNAMIC_DISPATCH(GemmTile)(wdt, x + m0 * ldx, ldx, mb, K, wb + n0 * ldw * es, ldw, nb,
                                   kGemmK, bias ? bias + n0 : nullptr, out + m0 * ldo + n0, ldo);
  });
}

}  // namespace gemmacpp::cpu
#endif
