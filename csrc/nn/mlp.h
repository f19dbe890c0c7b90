// The feed-forward blocks. GatedMlp (Gemma, RecurrentGemma): down(gelu_tanh(gate(h)) * up(h)),
// hook sites mlp.hook_pre (the gate projection, before the GELU), mlp.hook_pre_linear (the up
// projection) and mlp.hook_post (their product). With a gate cutoff (Gemma 3n's activation
// sparsity, a gaussian top-k) the gate becomes relu(gate - (mean + z * std)) per row, std the
// population one, before the GELU: site mlp.hook_sparse_gate, after mlp.hook_pre. Mlp (SigLIP): out(gelu_tanh(in(h))), sites
// mlp.hook_pre and mlp.hook_post. Biases where the family has them.
#pragma once

#include <cstdint>

#include "csrc/nn/forward.h"
#include "csrc/nn/linear.h"
#include "csrc/nn/scope.h"

namespace gemmacpp::nn {

class GatedMlp {
 public:
  // s: the block's scope ("blocks.3.mlp."); weights gate, up, down (.weight, and .bias with bias).
  // sparse: the gate cutoff at cutoff_z standard deviations.
  // stored_ffn > ffn: the stored matrices are that wide, and the block uses their first ffn
  // rows / columns (a MatFormer slice, read in place).
  GatedMlp(const Scope& s, int64_t d, int64_t ffn, bool bias, bool sparse = false, float cutoff_z = 0,
           int64_t stored_ffn = 0);
  void operator()(const Forward& f, const float* h, float* out) const;  // h, out [M, d]

 private:
  int64_t ffn_;
  Linear gate_, up_, down_;
  bool sparse_;
  float cutoff_z_;
  int pre_site_, sparse_site_, pre_linear_site_, post_site_;
};

class Mlp {
 public:
  // s: the block's scope; weights in and out, both with biases.
  Mlp(const Scope& s, int64_t d, int64_t ffn);
  void operator()(const Forward& f, const float* h, float* out) const;

 private:
  int64_t ffn_;
  Linear in_, out_;
  int pre_site_, post_site_;
};

}  // namespace gemmacpp::nn
