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
  // Per-thread scratch: accumulator tile + packed panel.
  static thread_local hwy::AlignedFreeUniquePtr<float[]> scratch;
  static thread_local size_t capacity = 0;
  float* HWY_RESTRICT c = ScratchFloats(scratch, capacity, need);
  float* HWY_RESTRICT panel = c + mb * ldc;  // ldc is a multiple of NR: panel stays aligned
  std::fill(c, c + mb * ldc, 0.0f);
  visit_float(wdt, [&](auto tag) {
    using T = decltype(tag);
    const T* wt = static_cast<const T*>(w);
    for (size_t k0 = 0; k0 < K; k0 += kb_max) {
      const size_t kb = std::min(kb_max, K - k0);
      PackPanel(wt + k0, ldw, nb, kb, panel);
      GemmPanel(x + k0, ldx, mb, panel, kb, strips, c, ldc);
    }
  });
  StoreTile(c, ldc, mb, nb, bias, out, ldo);
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(MatvecBlock);
HWY_EXPORT(GemmTile);

using namespace gemm;

void linear(const float* x, int64_t ldx, int64_t M, int64_t K, DType wdt, const void* w,
            int64_t ldw, int64_t N, const float* bias, float* out, int64_t ldo) {
  if (M <= 0 || N <= 0) return;
  const int64_t es = dtype_size(wdt);
  const char* wb = static_cast<const char*>(w);
  if (M <= kMatvecMaxRows) {
    for_each_matvec_block(N, K * es, [&](int64_t n0, int64_t nb) {
      HWY_DYNAMIC_DISPATCH(MatvecBlock)(wdt, x, ldx, M, K, wb + n0 * ldw * es, ldw, nb,
                                        bias ? bias + n0 : nullptr, out + n0, ldo);
    });
    return;
  }
  for_each_gemm_tile(M, N, [&](int64_t m0, int64_t mb, int64_t n0, int64_t nb) {
    HWY_DYNAMIC_DISPATCH(GemmTile)(wdt, x + m0 * ldx, ldx, mb, K, wb + n0 * ldw * es, ldw, nb,
                                   kK, bias ? bias + n0 : nullptr, out + m0 * ldo + n0, ldo);
  });
}

}  // namespace gemmacpp::cpu
#endif
