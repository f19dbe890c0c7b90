// Per-layer inputs (PLE): a second, small signal per token and layer that each layer gates into
// its residual stream (EmbeddingGemma 2; Gemma 3n and Gemma 4 E2B/E4B add a token table to it).
//  PerLayerInputs (model level, after the embedding): proj = RMSNorm_P(reshape(W x * D^-1/2, [L, P])),
//    weights per_layer_proj.weight [L * P, D] and per_layer_proj_norm.weight [P]; with a token
//    table per_layer_embed.weight [V_ple, L * P] (config.per_layer_vocab), the inputs are
//    (proj + E_ple[ids] * sqrt(P)) * 2^-1/2, ids past the table reading row 0. Hook site
//    hook_per_layer_input [B, T, L, P]: what the layers read.
//  PerLayerGate (each layer, after its MLP): x += post_norm(W_proj (gelu_tanh(W_gate x) * ple_l)),
//    weights ple.gate.weight [P, D], ple.proj.weight [D, P], ple.post_norm.weight [D]; hook sites
//    ple.hook_gate [B, T, P] (gelu(gate) * ple_l) and hook_ple_out [B, T, D] (what is added).
//    Gemma 3n gates a scaled copy of its active AltUp stream and adds the result to the other
//    streams (gated()); it also offers the layer's slice as hook_per_layer_input [B, T, P].
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "csrc/nn/forward.h"
#include "csrc/nn/config.h"
#include "csrc/nn/embedding.h"
#include "csrc/nn/linear.h"
#include "csrc/nn/norm.h"
#include "csrc/nn/residual.h"
#include "csrc/nn/scope.h"

namespace gemmacpp::nn {

class PerLayerInputs {
 public:
  PerLayerInputs(const Scope& s, const ModelConfig& c);
  int64_t floats_per_row() const { return layers_ * width_; }
  // x [M, d] (the embedding of the packed ids) -> out [M, L * P].
  void operator()(const Forward& f, const std::vector<int64_t>& ids, const float* x, float* out) const;

 private:
  int64_t d_, layers_, width_, vocab_;
  std::optional<TokenEmbedding> tokens_;
  Linear proj_;
  RMSNorm norm_;
  int site_;
};

class PerLayerGate {
 public:
  // s: the layer's scope ("blocks.3."); layer: which slice of the per-layer inputs it reads.
  // slice_site: offer the layer's slice of the inputs as hook_per_layer_input.
  PerLayerGate(const Scope& s, int64_t d, int64_t layers, int64_t width, int64_t layer, double eps, bool unit_offset,
               bool slice_site = false);
  // r.x += the gated per-layer input (r.h, r.out are the layer's work buffers).
  void operator()(const Forward& f, const Residual& r) const;
  // out [M, d] = post_norm(W_proj (gelu_tanh(W_gate in) * ple_l)) for in [M, d].
  void gated(const Forward& f, const float* in, float* out) const;

 private:
  int64_t d_, layers_, width_, layer_;
  int slice_site_;
  Linear gate_, proj_;
  RMSNorm post_norm_;
  int gate_site_, out_site_;
};

}  // namespace gemmacpp::nn
