// Mixture of experts beside a layer's dense MLP (Gemma 4 26B-A4B). The router reads the residual
// stream itself: x / rms(x) times router_scale * d^-1/2, a projection to E logits, softmax, the
// top k renormalised and times expert_scale (cpu::moe_route). The chosen experts' gated MLPs
// (stacks gate_up [E, 2F, d], down [E, d, F], float or GGML blocks read in place) run on
// ln_pre(x), each only on the tokens routed to it, and ln_post normalises their weighted sum.
// Weights below "blocks.{i}.moe.": router.weight, router_scale, expert_scale, gate_up, down,
// ln_pre.weight, ln_post.weight. Hook sites:
//  moe.hook_router_logits [B, T, E]: edits change the routing;
//  moe.hook_expert_ids [B, T, k]: the chosen experts as float32 integers; edits choose others (a
//    value that is not an expert id is a ValueError naming the hook);
//  moe.hook_expert_weights [B, T, k]: their weights, after renormalising and expert_scale;
//  moe.hook_out [B, T, d]: what the experts add, after ln_post.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "csrc/core/expert_stack.h"
#include "csrc/nn/config.h"
#include "csrc/nn/forward.h"
#include "csrc/nn/linear.h"
#include "csrc/nn/norm.h"
#include "csrc/nn/scope.h"

namespace gemmacpp::nn {

class Moe {
 public:
  // s: the block's scope ("blocks.3.moe.").
  Moe(const Scope& s, const ModelConfig& c);
  // x [M, d] (the residual stream) -> out [M, d].
  void operator()(const Forward& f, const float* x, float* out) const;

 private:
  int64_t d_, experts_, top_k_, ffn_;
  RMSNorm router_norm_, ln_pre_, ln_post_;
  Linear router_;
  std::vector<float> expert_scale_;
  ExpertStack gate_up_, down_;
  int logits_site_, ids_site_, weights_site_, out_site_;
  std::string ids_name_;
};

}  // namespace gemmacpp::nn
