#include "csrc/cpu/patches.h"

#include <cstring>

#include "csrc/core/threads.h"

namespace gemmacpp::cpu {

void image_patches(const float* pixels, int64_t N, int64_t C, int64_t S, int64_t ps, float* cols) {
  const int64_t G = S / ps, P = G * G, K = C * ps * ps;
  parallel_for(N * P, [&](int64_t r, int) {
    const int64_t n = r / P, py = (r % P) / G, px = r % G;
    float* dst = cols + r * K;
    for (int64_t ch = 0; ch < C; ++ch) {
      for (int64_t y = 0; y < ps; ++y) {
        const float* src = pixels + ((n * C + ch) * S + py * ps + y) * S + px * ps;
        std::memcpy(dst + (ch * ps + y) * ps, src, size_t(ps) * sizeof(float));
      }
    }
  });
}

void pool_patch_grid(const float* features, int64_t N, int64_t G, int64_t d, int64_t T, float* out) {
  const int64_t kp = G / T, tokens = T * T, P = G * G;
  parallel_for(N * tokens, [&](int64_t r, int) {
    const int64_t n = r / tokens, ty = (r % tokens) / T, tx = r % T;
    float* dst = out + r * d;
    std::memset(dst, 0, size_t(d) * sizeof(float));
    for (int64_t ky = 0; ky < kp; ++ky) {
      for (int64_t kx = 0; kx < kp; ++kx) {
        const float* src = features + (n * P + (ty * kp + ky) * G + tx * kp + kx) * d;
        for (int64_t j = 0; j < d; ++j) dst[j] += src[j];
      }
    }
    const float inv = 1.0f / float(kp * kp);
    for (int64_t j = 0; j < d; ++j) dst[j] *= inv;
  });
}

}  // namespace gemmacpp::cpu
