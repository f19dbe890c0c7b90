// AltUp's stream mixing (Gemma 3n's alternating updates): N residual streams [N, M, d], stream k
// of row r at streams + (k * M + r) * d, mixed per row by coefficients that a router gives.
#pragma once
#include <cstdint>

namespace gemmacpp::cpu {

// The most streams the kernels take (Gemma 3n has 4): one vector per stream stays in registers.
constexpr int64_t kAltUpMaxStreams = 16;

// out[k] = H[k] + sum_n C[k][n] H[n] per row, with C = reshape(coefs @ tanh(router_logits[r]),
// [N, N]): router_logits [M, N], coefs [N * N, N]. out may alias streams.
void altup_predict(const float* streams, const float* router_logits, const float* coefs, float* out,
                   int64_t N, int64_t M, int64_t d);

// out[k] = P[k] + (coefs @ tanh(router_logits[r]) + 1)[k] * (activated - P[0]) per row:
// predictions P [N, M, d], activated [M, d], router_logits [M, N], coefs [N, N]. out may alias
// predictions.
void altup_correct(const float* predictions, const float* activated, const float* router_logits,
                   const float* coefs, float* out, int64_t N, int64_t M, int64_t d);

// out[0] = streams[0]; out[k] = streams[k] * rms(streams[0]) / sqrt(max(mean(streams[k]^2), eps))
// per row, for k >= 1 (rms: the root mean square, summed in float64). out may alias streams.
void altup_rescale(const float* streams, float* out, int64_t N, int64_t M, int64_t d, float eps);

}  // namespace gemmacpp::cpu
