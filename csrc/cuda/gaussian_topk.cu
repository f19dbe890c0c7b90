#include "csrc/cuda/gaussian_topk.h"

#include <cuda_runtime.h>

#include "csrc/cuda/common.cuh"
#include "csrc/cuda/dtype_dispatch.cuh"
#include "csrc/cuda/runtime.h"

namespace gemmacpp::cuda {
namespace {

constexpr int kMaxThreads = 256;

// One block per row: the mean and the population std in float64 (the difference from the mean
// rounded to float32 first, as on the CPU), then relu(x - (mean + z * std)).
template <class T>
__global__ void gaussian_topk_kernel(const T* x, T* y, int64_t F, float z) {
  __shared__ double warp_sums[kMaxThreads / 32];
  const T* xr = x + blockIdx.x * F;
  T* yr = y + blockIdx.x * F;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < F; i += blockDim.x) s += double(to_f32(xr[i]));
  const float mean = float(block_sum(s, warp_sums) / double(F));
  double sq = 0.0;
  for (int64_t i = threadIdx.x; i < F; i += blockDim.x) {
    const double e = double(__fsub_rn(to_f32(xr[i]), mean));
    sq = __dadd_rn(sq, __dmul_rn(e, e));
  }
  const float std_dev = float(sqrt(block_sum(sq, warp_sums) / double(F)));
  const float cutoff = __fadd_rn(mean, __fmul_rn(std_dev, z));
  for (int64_t i = threadIdx.x; i < F; i += blockDim.x) {
    const float v = to_f32(xr[i]);
    yr[i] = from_f32<T>(v > cutoff ? __fsub_rn(v, cutoff) : 0.0f);
  }
}

}  // namespace

void gaussian_topk(DType dt, const void* x, void* y, int64_t rows, int64_t F, float z, int device) {
  if (rows <= 0 || F <= 0) return;
  cudaSetDevice(device);
  // Whole warps (the shuffles use full masks), no more threads than the row needs.
  const int threads = int(F >= kMaxThreads ? kMaxThreads : (F + 31) / 32 * 32);
  visit_float(dt, [&](auto tag) {
    using T = decltype(tag);
    constexpr int64_t kMaxBlocks = 0x7fffffff;
    for (int64_t r0 = 0; r0 < rows; r0 += kMaxBlocks) {
      const int64_t n = rows - r0 < kMaxBlocks ? rows - r0 : kMaxBlocks;
      gaussian_topk_kernel<T><<<unsigned(n), threads>>>(static_cast<const T*>(x) + r0 * F,
                                                        static_cast<T*>(y) + r0 * F, F, z);
    }
  });
  check_launch("gaussian_topk");
}

}  // namespace gemmacpp::cuda
