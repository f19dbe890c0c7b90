#pragma once
#include <cstdint>

namespace gemmacpp::cuda {
// cpu::altup_predict and cpu::altup_correct (csrc/cpu/altup.h) on `device` (default stream):
// float32, streams [N, M, d], N <= 16; out may alias the streams.
void altup_predict(const float* streams, const float* router_logits, const float* coefs, float* out,
                   int64_t N, int64_t M, int64_t d, int device);
void altup_correct(const float* predictions, const float* activated, const float* router_logits,
                   const float* coefs, float* out, int64_t N, int64_t M, int64_t d, int device);
void altup_rescale(const float* streams, float* out, int64_t N, int64_t M, int64_t d, float eps, int device);
}  // namespace gemmacpp::cuda
