#include "csrc/cuda/activation.h"

#include <cuda_runtime.h>

#include "csrc/cuda/common.cuh"
#include "csrc/cuda/dtype_dispatch.cuh"
#include "csrc/cuda/runtime.h"

namespace gemmacpp::cuda {
namespace {

// gelu_tanh(x) written as x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3), as on the CPU:
// the same function as 0.5 x (1 + tanh(u)) without the cancellation in 1 + tanh(u) for x < 0.
__device__ __forceinline__ float gelu_tanh_f32(float x) {
  const float u2 = -2.0f * 0.7978845608028654f * fmaf(0.044715f * x, x * x, x);
  return x / (1.0f + expf(u2));  // expf, not __expf: the CPU op is exact to ~1e-6 relative
}

template <class T>
__global__ void gelu_tanh_kernel(const T* x, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    y[i] = from_f32<T>(gelu_tanh_f32(to_f32(x[i])));
  }
}

template <class T>
__global__ void geglu_kernel(const T* gate, const T* up, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    y[i] = from_f32<T>(gelu_tanh_f32(to_f32(gate[i])) * to_f32(up[i]));
  }
}

// Grid-stride launch shape: enough blocks to cover n, capped so that huge n loops instead.
constexpr int kThreads = 256;
int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return int(b < 65535 ? b : 65535);
}

}  // namespace

void gelu_tanh(DType dt, const void* x, void* y, int64_t n, int device) {
  if (n == 0) return;
  cudaSetDevice(device);
  visit_float(dt, [&](auto tag) {
    using T = decltype(tag);
    gelu_tanh_kernel<T><<<blocks_for(n), kThreads>>>(static_cast<const T*>(x),
                                                     static_cast<T*>(y), n);
  });
  check_launch("gelu_tanh");
}

void geglu(DType dt, const void* gate, const void* up, void* y, int64_t n, int device) {
  if (n == 0) return;
  cudaSetDevice(device);
  visit_float(dt, [&](auto tag) {
    using T = decltype(tag);
    geglu_kernel<T><<<blocks_for(n), kThreads>>>(static_cast<const T*>(gate),
                                                 static_cast<const T*>(up), static_cast<T*>(y),
                                                 n);
  });
  check_launch("geglu");
}

}  // namespace gemmacpp::cuda
