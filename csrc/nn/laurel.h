// LAuReL (learned augmented residual, Gemma 3n): a low-rank branch beside attention on the
// layer's normalised input h: out = h + post_norm(W_right (W_left h)). Weights laurel.left.weight
// [rank, d], laurel.right.weight [d, rank], laurel.post_norm.weight [d]; hook site laurel.hook_out.
#pragma once

#include <cstdint>

#include "csrc/nn/forward.h"
#include "csrc/nn/linear.h"
#include "csrc/nn/norm.h"
#include "csrc/nn/scope.h"

namespace gemmacpp::nn {

class Laurel {
 public:
  // s: the layer's scope ("blocks.3.").
  Laurel(const Scope& s, int64_t d, int64_t rank, double eps, bool unit_offset);
  void operator()(const Forward& f, const float* h, float* out) const;  // h, out [M, d]

 private:
  int64_t d_, rank_;
  Linear left_, right_;
  RMSNorm post_norm_;
  int site_;
};

}  // namespace gemmacpp::nn
