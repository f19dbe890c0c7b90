#include "csrc/nn/moe.h"

#include <cmath>
#include <string>

#include "csrc/core/error.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {
namespace {

ExpertStack stack_of(const WeightTensor& t) {
  const int64_t E = t.shape[0], N = t.shape[1], K = t.shape[2];
  if (!t.quantized) return ExpertStack::dense(t.data, E, N, K, t.dtype);
  QType q = QType::kQ8_0;
  parse_qtype(t.type_name(), &q);  // the binder checked it
  return ExpertStack::blocks(t.data, E, N, K, q);
}

// transformers: x / rms(x) * router_scale * d^-1/2, as one weight of the router's norm.
std::vector<float> router_weight(const Scope& s, int64_t d) {
  std::vector<float> w = s.weights.f32(s.name("router_scale"), {d});
  const float root = float(1.0 / std::sqrt(double(d)));
  for (float& v : w) v *= root;
  return w;
}

}  // namespace

Moe::Moe(const Scope& s, const ModelConfig& c)
    : d_(c.d),
      experts_(c.n_experts),
      top_k_(c.top_k),
      ffn_(c.expert_ffn),
      router_norm_(RMSNorm::with_weight(router_weight(s, c.d), c.norm_eps)),
      ln_pre_(s.weights, s.name("ln_pre.weight"), c.d, c.norm_eps, c.norm_unit_offset),
      ln_post_(s.weights, s.name("ln_post.weight"), c.d, c.norm_eps, c.norm_unit_offset),
      router_(s.weights, s.name("router.weight"), c.n_experts, c.d),
      expert_scale_(s.weights.f32(s.name("expert_scale"), {c.n_experts})),
      gate_up_(stack_of(s.weights.matrix(s.name("gate_up"), {c.n_experts, 2 * c.expert_ffn, c.d}))),
      down_(stack_of(s.weights.matrix(s.name("down"), {c.n_experts, c.d, c.expert_ffn}))),
      logits_site_(s.site("hook_router_logits")),
      ids_site_(s.site("hook_expert_ids")),
      weights_site_(s.site("hook_expert_weights")),
      out_site_(s.site("hook_out")),
      ids_name_(s.name("hook_expert_ids")) {}

void Moe::operator()(const Forward& f, const float* x, float* out) const {
  const int64_t M = f.rows(), E = experts_, k = top_k_;
  Workspace::Frame ws(*f.workspace);
  float* const z = ws.take(M * d_);
  float* const logits = ws.take(M * E);
  float* const weights = ws.take(M * k);
  std::vector<int32_t> ids(size_t(M * k));
  router_norm_(f.device, x, z, M);
  router_(f.device, z, M, logits);
  f.offer(logits_site_, logits, {E});
  ops::dispatch::moe_route(f.device, logits, M, E, k, expert_scale_.data(), ids.data(), weights);
  if (f.offer.wants(ids_site_)) {
    float* const as_float = ws.take(M * k);
    for (int64_t i = 0; i < M * k; ++i) as_float[i] = float(ids[size_t(i)]);
    f.offer(ids_site_, as_float, {k});
    for (int64_t i = 0; i < M * k; ++i) {
      const float id = as_float[i];
      GC_CHECK(id >= 0 && id < float(E) && id == std::floor(id), ValueError, ids_name_,
               ": expert ids must be integers in [0, ", E, "), got ", id);
      ids[size_t(i)] = int32_t(id);
    }
  }
  f.offer(weights_site_, weights, {k});
  ln_pre_(f.device, x, z, M);
  ops::dispatch::moe_experts(f.device, z, d_, M, ids.data(), weights, k, gate_up_, down_, out, d_,
                             ws.take(ops::dispatch::moe_workspace_floats(M, k, d_, ffn_)));
  ln_post_(f.device, out, out, M);
  f.offer(out_site_, out, {d_});
}

}  // namespace gemmacpp::nn
