// AltUp (alternating updates, Gemma 3n): the residual stream is N parallel streams [N, M, d],
// stream 0 being the one a layer's blocks run on (x of the layer's Residual) and the others
// updated from it by small per-token mixing coefficients.
//  AltUpStreams (model level): before the layers each stream k >= 1 is W_k x0 (x0 the embedding),
//    after them W'_k H[k]; both rescaled to stream 0's root mean square (y * rms(H0) /
//    sqrt(max(mean(y^2), 1e-5))). Weights <name>.{k}.weight [d, d], k < N - 1.
//  AltUp (each layer): router modalities m = tanh(router(norm(x) / d)) [N]; predict
//    H[k] += sum_n C[k][n] H[n] with C = reshape(pred_coefs m, [N, N]); correct, from the block's
//    output y: H[k] = P[k] + (corr_coefs m' + 1)[k] (y - P[0]) with m' the modalities of y.
//    Weights altup.router.weight [N, d], altup.router_norm.weight [d], altup.pred_coefs.weight
//    [N*N, N], altup.corr_coefs.weight [N, N], altup.out_scale [d] (scales the corrected active
//    stream before it gates the per-layer inputs).
// The mixing is per token and tiny next to the matrix products (16 multiply-adds per stream
// element at N = 4): the altup_predict, altup_correct and altup_rescale ops (CPU and CUDA); the
// blocks themselves run on the CPU only so far (their coefficients are host vectors).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "csrc/nn/forward.h"
#include "csrc/nn/linear.h"
#include "csrc/nn/norm.h"
#include "csrc/nn/scope.h"

namespace gemmacpp::nn {

// Offers the streams [N, M, d] at `site` as [B, T, N, d] (through a transposed copy; edits come back).
void offer_streams(const Forward& f, int site, float* streams, int64_t n, int64_t d);

class AltUpStreams {
 public:
  // name: "altup_proj" (spread) or "altup_unembed" (gather); site: where the result is offered.
  AltUpStreams(const Scope& s, const std::string& name, int64_t d, int64_t n, const std::string& site);
  // streams [N, M, d]: each k >= 1 becomes the rescaled W_k H[0] (spread) or W_k H[k] (gather).
  void operator()(const Forward& f, float* streams, bool spread) const;
  // x [M, d] = the mean of the N streams (after a gather).
  void mean(const Forward& f, const float* streams, float* x) const;

 private:
  int64_t d_, n_;
  std::vector<Linear> proj_;
  int site_;
};

class AltUp {
 public:
  // s: the layer's scope ("blocks.3."); weights below altup.
  AltUp(const Scope& s, int64_t d, int64_t n, double eps, bool unit_offset, bool correct_scale);
  // Streams [N, M, d] to their predictions, in place.
  void predict(const Forward& f, float* streams) const;
  // Predictions [N, M, d] corrected by the block's output y [M, d], in place.
  void correct(const Forward& f, float* streams, const float* y) const;
  // out [M, d] = stream 0 times out_scale (or a copy without correct_scale).
  void scaled_active(const Forward& f, const float* streams, float* out) const;

 private:
  // logits [M, N] = router(router_norm(x) / d); the mixing ops take their tanh (the modalities).
  void router_logits(const Forward& f, const float* x, float* logits) const;

  int64_t d_, n_;
  RMSNorm router_norm_;
  Linear router_;
  std::vector<float> pred_coefs_, corr_coefs_, out_scale_;  // tiny: [N*N, N], [N, N], [d]
};

}  // namespace gemmacpp::nn
