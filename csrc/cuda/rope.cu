#include "csrc/cuda/rope.h"

#include <cuda_runtime.h>

#include <cmath>

#include "csrc/core/error.h"
#include "csrc/cuda/common.cuh"
#include "csrc/cuda/dtype_dispatch.cuh"
#include "csrc/cuda/runtime.h"

namespace gemmacpp::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kChunk = 1024;  // cos/sin pairs per shared-memory table (8 KiB)

// One block per (b, t) row of H heads. The row's cos/sin table is built chunk by chunk in shared
// memory and shared by all H heads, as on the CPU. Angles are formed and reduced to [-pi, pi] in
// double (at position 30000 a float32 angle is off by ~1e-3 rad); sin/cos then run in float32.
template <class T, class P>
__global__ void rope_kernel(const T* x, T* y, int64_t T_len, int64_t H, int64_t D,
                            const P* positions, bool per_batch, double log2_base, double inv_scale,
                            int64_t half, int64_t rotated) {
  __shared__ float cos_t[kChunk], sin_t[kChunk];
  const int64_t row = blockIdx.x;  // b * T + t
  const double pos = double(positions[per_batch ? row : row % T_len]);
  const T* xr = x + row * H * D;
  T* yr = y + row * H * D;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (int64_t c0 = 0; c0 < half; c0 += kChunk) {
    const int64_t n = half - c0 < kChunk ? half - c0 : kChunk;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const double freq =
          c0 + i < rotated ? exp2(-2.0 * double(c0 + i) / double(2 * half) * log2_base) * inv_scale : 0.0;
      const double a = pos * freq;
      const float r = float(a - kTwoPi * rint(a / kTwoPi));
      sincosf(r, &sin_t[i], &cos_t[i]);
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < H * n; e += blockDim.x) {
      const int64_t h = e / n, i = e % n;
      const T* xh = xr + h * D;
      T* yh = yr + h * D;
      const float a = to_f32(xh[c0 + i]), b = to_f32(xh[c0 + i + half]);
      const float c = cos_t[i], s = sin_t[i];
      yh[c0 + i] = from_f32<T>(a * c - b * s);
      yh[c0 + i + half] = from_f32<T>(b * c + a * s);
    }
    __syncthreads();  // the next chunk overwrites the table
  }
  // Dimensions past the rotary part pass through (nothing to do in place).
  if (x != y) {
    const int64_t rest = D - 2 * half;
    for (int64_t e = threadIdx.x; e < H * rest; e += blockDim.x) {
      const int64_t h = e / rest, i = 2 * half + e % rest;
      yr[h * D + i] = xr[h * D + i];
    }
  }
}

}  // namespace

void rope(DType dt, const void* x, void* y, int64_t B, int64_t T, int64_t H, int64_t D,
          DType pos_dt, const void* positions, bool per_batch, double base, double scale,
          int64_t rotary_dim, int64_t rotated_pairs, int device) {
  const int64_t rows = B * T;
  if (rows == 0 || H == 0 || D == 0) return;
  GC_CHECK(rows <= 0x7fffffff, ValueError, "rope: B * T = ", rows, " rows exceed the CUDA grid");
  cudaSetDevice(device);
  const double log2_base = std::log2(base), inv_scale = 1.0 / scale;
  visit_float(dt, [&](auto tag) {
    using T_ = decltype(tag);
    auto launch = [&](auto* pos) {
      rope_kernel<<<unsigned(rows), kThreads>>>(static_cast<const T_*>(x), static_cast<T_*>(y), T,
                                                H, D, pos, per_batch, log2_base, inv_scale,
                                                rotary_dim / 2, rotated_pairs);
    };
    if (pos_dt == DType::kI32) launch(static_cast<const int32_t*>(positions));
    else launch(static_cast<const int64_t*>(positions));
  });
  check_launch("rope");
}

}  // namespace gemmacpp::cuda
