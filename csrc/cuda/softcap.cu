#include "csrc/cuda/softcap.h"

#include <cuda_runtime.h>

#include "csrc/cuda/common.cuh"
#include "csrc/cuda/dtype_dispatch.cuh"
#include "csrc/cuda/runtime.h"

namespace gemmacpp::cuda {
namespace {

template <class T>
__global__ void softcap_kernel(const T* x, T* y, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    y[i] = from_f32<T>(cap * tanhf(to_f32(x[i]) * inv));
  }
}

}  // namespace

void softcap(DType dt, const void* x, void* y, int64_t n, float cap, int device) {
  if (n == 0) return;
  cudaSetDevice(device);
  visit_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const int threads = 256;
    const int blocks = int((n + threads - 1) / threads < 65535 ? (n + threads - 1) / threads : 65535);
    softcap_kernel<T><<<blocks, threads>>>(static_cast<const T*>(x), static_cast<T*>(y), n, cap);
  });
  check_launch("softcap");
}

}  // namespace gemmacpp::cuda
