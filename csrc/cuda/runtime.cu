#include "csrc/cuda/runtime.h"

#include <cuda_runtime.h>

#include "csrc/core/error.h"

namespace gemmacpp::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

std::shared_ptr<void> allocate(size_t bytes, int device) {
  GC_CHECK(cudaSetDevice(device) == cudaSuccess, ValueError, "cannot use CUDA device ", device);
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  GC_CHECK(err == cudaSuccess, ValueError, "cudaMalloc of ", bytes, " bytes failed: ",
           cudaGetErrorString(err));
  return std::shared_ptr<void>(p, [device](void* q) {
    cudaSetDevice(device);
    cudaFree(q);
  });
}

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  GC_CHECK(err == cudaSuccess, ValueError, what, ": CUDA launch failed: ", cudaGetErrorString(err));
}

}  // namespace gemmacpp::cuda
