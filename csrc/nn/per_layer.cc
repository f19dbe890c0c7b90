#include "csrc/nn/per_layer.h"

#include <cmath>
#include <cstring>

#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {

PerLayerInputs::PerLayerInputs(const Scope& s, const ModelConfig& c)
    : d_(c.d),
      layers_(c.layer_ple_slots()),
      width_(c.per_layer_input),
      vocab_(c.per_layer_vocab),
      tokens_(c.per_layer_vocab > 0 ? std::optional<TokenEmbedding>(
                                          std::in_place, s, "per_layer_embed.weight", c.per_layer_vocab,
                                          c.layer_ple_slots() * c.per_layer_input, c.per_layer_embed_scale, "")
                                    : std::nullopt),
      proj_(s.weights, s.name("per_layer_proj.weight"), layers_ * width_, d_),
      norm_(s.weights, s.name("per_layer_proj_norm.weight"), width_, c.norm_eps, c.norm_unit_offset),
      site_(s.site("hook_per_layer_input")) {}

void PerLayerInputs::operator()(const Forward& f, const std::vector<int64_t>& ids, const float* x,
                                float* out) const {
  const int64_t M = f.rows(), n = M * layers_ * width_;
  proj_(f.device, x, M, out);
  ops::dispatch::scale_into(f.device, out, float(1.0 / std::sqrt(double(d_))), n);
  norm_(f.device, out, out, M * layers_);  // one P-wide norm per (row, layer)
  if (tokens_) {
    std::vector<int64_t> rows(ids);
    for (int64_t& id : rows) id = id < vocab_ ? id : 0;
    Workspace::Frame ws(*f.workspace);
    float* const table = ws.take(n);
    tokens_->lookup(f.device, rows.data(), M, table);
    ops::dispatch::add_into(f.device, out, table, n);
    ops::dispatch::scale_into(f.device, out, float(1.0 / std::sqrt(2.0)), n);
  }
  f.offer(site_, out, {layers_, width_});
}

PerLayerGate::PerLayerGate(const Scope& s, int64_t d, int64_t layers, int64_t width, int64_t layer, double eps,
                           bool unit_offset, bool slice_site)
    : d_(d),
      layers_(layers),
      width_(width),
      layer_(layer),
      slice_site_(slice_site ? s.site("hook_per_layer_input") : -1),
      gate_(s.weights, s.name("ple.gate.weight"), width, d),
      proj_(s.weights, s.name("ple.proj.weight"), d, width),
      post_norm_(s.weights, s.name("ple.post_norm.weight"), d, eps, unit_offset),
      gate_site_(s.site("ple.hook_gate")),
      out_site_(s.site("hook_ple_out")) {}

void PerLayerGate::operator()(const Forward& f, const Residual& r) const {
  gated(f, r.x, r.out);
  ops::dispatch::add_into(f.device, r.x, r.out, f.rows() * r.d);
}

void PerLayerGate::gated(const Forward& f, const float* in, float* out) const {
  const int64_t M = f.rows(), P = width_;
  Workspace::Frame ws(*f.workspace);
  float* const gate = ws.take(M * P);
  float* const ple = ws.take(M * P);
  // This layer's slice of the per-layer inputs, made contiguous for the elementwise kernel.
  for (int64_t row = 0; row < M; ++row) {
    std::memcpy(ple + row * P, f.per_layer_input + (row * layers_ + layer_) * P, size_t(P) * sizeof(float));
  }
  if (slice_site_ >= 0) f.offer(slice_site_, ple, {P});  // -1: the point is the model's, not the layer's
  gate_(f.device, in, M, gate);
  ops::dispatch::geglu(f.device, DType::kF32, gate, ple, gate, M * P);  // gelu_tanh(gate) * ple_l
  f.offer(gate_site_, gate, {P});
  proj_(f.device, gate, M, out);
  post_norm_(f.device, out, out, M);
  f.offer(out_site_, out, {d_});
}

}  // namespace gemmacpp::nn
