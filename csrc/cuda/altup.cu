#include "csrc/cuda/altup.h"

#include <cuda_runtime.h>

#include "csrc/cuda/common.cuh"
#include "csrc/cuda/runtime.h"

namespace gemmacpp::cuda {
namespace {

constexpr int kMaxStreams = 16;  // as cpu::kAltUpMaxStreams
constexpr int kThreads = 256;

// The explicit _rn intrinsics keep nvcc from fusing products into sums: each product and each
// sum rounds as the CPU kernel's (csrc/cpu/altup.cc) do, in the same order.

// One block per row: the row's coefficients C = reshape(coefs @ tanh(logits), [N, N]) in shared
// memory, then each thread mixes its strided share of the row's columns across the streams.
__global__ void altup_predict_kernel(const float* streams, const float* logits, const float* coefs,
                                     float* out, int N, int64_t M, int64_t d) {
  __shared__ float m[kMaxStreams], c[kMaxStreams * kMaxStreams];
  const int64_t r = blockIdx.x;
  if (int(threadIdx.x) < N) m[threadIdx.x] = tanhf(logits[r * N + threadIdx.x]);
  __syncthreads();
  for (int i = threadIdx.x; i < N * N; i += blockDim.x) {
    float s = 0.0f;
    for (int j = 0; j < N; ++j) s = __fadd_rn(s, __fmul_rn(coefs[i * N + j], m[j]));
    c[i] = s;
  }
  __syncthreads();
  const int64_t stride = M * d;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float h[kMaxStreams];
    for (int s = 0; s < N; ++s) h[s] = streams[s * stride + r * d + j];
    for (int k = 0; k < N; ++k) {
      float acc = 0.0f;
      for (int s = 0; s < N; ++s) acc = __fadd_rn(acc, __fmul_rn(h[s], c[k * N + s]));
      out[k * stride + r * d + j] = __fadd_rn(acc, h[k]);
    }
  }
}

__global__ void altup_correct_kernel(const float* pred, const float* activated, const float* logits,
                                     const float* coefs, float* out, int N, int64_t M, int64_t d) {
  __shared__ float m[kMaxStreams], c[kMaxStreams];
  const int64_t r = blockIdx.x;
  if (int(threadIdx.x) < N) m[threadIdx.x] = tanhf(logits[r * N + threadIdx.x]);
  __syncthreads();
  if (int(threadIdx.x) < N) {
    float s = 0.0f;
    for (int j = 0; j < N; ++j) s = __fadd_rn(s, __fmul_rn(coefs[threadIdx.x * N + j], m[j]));
    c[threadIdx.x] = __fadd_rn(s, 1.0f);
  }
  __syncthreads();
  const int64_t stride = M * d;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float innovation = __fsub_rn(activated[r * d + j], pred[r * d + j]);
    for (int k = 0; k < N; ++k) {
      const int64_t at = k * stride + r * d + j;
      out[at] = __fadd_rn(pred[at], __fmul_rn(innovation, c[k]));
    }
  }
}

__device__ __forceinline__ double row_sum_of_squares(const float* x, int64_t d, double* shared) {
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const double v = double(x[j]);
    s = __dadd_rn(s, __dmul_rn(v, v));
  }
  return block_sum(s, shared);
}

// One block per row: the target from stream 0, then every other stream scaled to it.
__global__ void altup_rescale_kernel(const float* streams, float* out, int N, int64_t M, int64_t d, float eps) {
  __shared__ double warp_sums[kThreads / 32];
  const int64_t r = blockIdx.x, stride = M * d;
  const float* x0 = streams + r * d;
  const float target = sqrtf(float(row_sum_of_squares(x0, d, warp_sums) / double(d)));
  if (out != streams) {
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) out[r * d + j] = x0[j];
  }
  for (int k = 1; k < N; ++k) {
    const float* y = streams + k * stride + r * d;
    const float magnitude = sqrtf(fmaxf(float(row_sum_of_squares(y, d, warp_sums) / double(d)), eps));
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      out[k * stride + r * d + j] = __fdiv_rn(__fmul_rn(y[j], target), magnitude);
    }
  }
}

// gridDim.x allows 2^31 - 1 blocks: rows in slices of that many.
template <class Launch>
void for_row_slices(int64_t M, const Launch& launch) {
  constexpr int64_t kMaxBlocks = 0x7fffffff;
  for (int64_t r0 = 0; r0 < M; r0 += kMaxBlocks) launch(r0, M - r0 < kMaxBlocks ? M - r0 : kMaxBlocks);
}

}  // namespace

void altup_predict(const float* streams, const float* router_logits, const float* coefs, float* out,
                   int64_t N, int64_t M, int64_t d, int device) {
  if (M <= 0 || d <= 0) return;
  cudaSetDevice(device);
  // A slice of rows is a view of every stream at row r0 (stream stride M * d stays).
  for_row_slices(M, [&](int64_t r0, int64_t n) {
    altup_predict_kernel<<<unsigned(n), kThreads>>>(streams + r0 * d, router_logits + r0 * N, coefs,
                                                    out + r0 * d, int(N), M, d);
  });
  check_launch("altup_predict");
}

void altup_correct(const float* predictions, const float* activated, const float* router_logits,
                   const float* coefs, float* out, int64_t N, int64_t M, int64_t d, int device) {
  if (M <= 0 || d <= 0) return;
  cudaSetDevice(device);
  for_row_slices(M, [&](int64_t r0, int64_t n) {
    altup_correct_kernel<<<unsigned(n), kThreads>>>(predictions + r0 * d, activated + r0 * d,
                                                    router_logits + r0 * N, coefs, out + r0 * d, int(N), M, d);
  });
  check_launch("altup_correct");
}

void altup_rescale(const float* streams, float* out, int64_t N, int64_t M, int64_t d, float eps, int device) {
  if (M <= 0 || d <= 0) return;
  cudaSetDevice(device);
  for_row_slices(M, [&](int64_t r0, int64_t n) {
    altup_rescale_kernel<<<unsigned(n), kThreads>>>(streams + r0 * d, out + r0 * d, int(N), M, d, eps);
  });
  check_launch("altup_rescale");
}

}  // namespace gemmacpp::cuda
