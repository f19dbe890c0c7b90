// The head of the Gemma-family decoders: final RMSNorm, unembedding tied to the token embedding
// (logits = h E^T), final soft-cap, with the hooks ln_final.hook_normalized and hook_logits. Only
// the rows whose logits are wanted go through it (one per sequence with last_only: the head is
// most of a small model's prefill cost at a 262k vocabulary).
#pragma once

#include <cstdint>

#include "csrc/nn/forward.h"
#include "csrc/nn/linear.h"
#include "csrc/nn/norm.h"
#include "csrc/nn/scope.h"

namespace gemmacpp::nn {

class TiedHead {
 public:
  // The final norm `norm_name` under s; the embedding table as the unembedding; softcap 0: none.
  TiedHead(const Scope& s, const std::string& norm_name, const WeightTensor& embedding, double eps,
           bool unit_offset, float softcap);

  // x [M, d]: the residual stream of the packed rows (overwritten). logits: [B, T, V], or with
  // last_only [B, 1, V] (zeros for an empty sequence), padding rows zero.
  void operator()(const Forward& f, bool last_only, float* x, float* logits) const;

 private:
  RMSNorm norm_;
  Linear unembed_;
  float softcap_;
  int normalized_site_, logits_site_;
};

}  // namespace gemmacpp::nn
