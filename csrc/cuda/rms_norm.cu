#include "csrc/cuda/rms_norm.h"

#include <cuda_runtime.h>

#include "csrc/cuda/common.cuh"
#include "csrc/cuda/dtype_dispatch.cuh"
#include "csrc/cuda/runtime.h"

namespace gemmacpp::cuda {
namespace {

constexpr int kMaxThreads = 256;

// One block per row; each thread first sums the squares of its strided share of the row, then
// scales that same share. The reduction order depends only on d and the block size.
template <class T, class W>
__global__ void rms_norm_kernel(const T* x, T* y, int64_t d, const W* w, float eps,
                                float offset) {
  __shared__ float warp_sums[kMaxThreads / 32];
  const T* xr = x + blockIdx.x * d;
  T* yr = y + blockIdx.x * d;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const float v = to_f32(xr[i]);
    ss = fmaf(v, v, ss);
  }
  ss = block_sum(ss, warp_sums);
  const float inv = rsqrtf(ss / float(d) + eps);
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    yr[i] = from_f32<T>(to_f32(xr[i]) * inv * (to_f32(w[i]) + offset));
  }
}

}  // namespace

void rms_norm(DType dt, const void* x, void* y, int64_t rows, int64_t d, DType wdt,
              const void* weight, float eps, bool unit_offset, int device) {
  if (rows == 0 || d == 0) return;
  cudaSetDevice(device);
  // Whole warps (the shuffles use full masks), no more threads than the row needs.
  const int threads = int(d >= kMaxThreads ? kMaxThreads : (d + 31) / 32 * 32);
  const float offset = unit_offset ? 1.0f : 0.0f;
  visit_float(dt, [&](auto xtag) {
    using T = decltype(xtag);
    visit_float(wdt, [&](auto wtag) {
      using W = decltype(wtag);
      // gridDim.x allows 2^31 - 1 blocks; launch in slices so that any row count works.
      constexpr int64_t kMaxBlocks = 0x7fffffff;
      for (int64_t r0 = 0; r0 < rows; r0 += kMaxBlocks) {
        const int64_t n = rows - r0 < kMaxBlocks ? rows - r0 : kMaxBlocks;
        rms_norm_kernel<T, W><<<unsigned(n), threads>>>(static_cast<const T*>(x) + r0 * d,
                                                        static_cast<T*>(y) + r0 * d, d,
                                                        static_cast<const W*>(weight), eps,
                                                        offset);
      }
    });
  });
  check_launch("rms_norm");
}

}  // namespace gemmacpp::cuda
