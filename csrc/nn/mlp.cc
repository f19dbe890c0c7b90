#include "csrc/nn/mlp.h"

#include <algorithm>

#include "csrc/core/error.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {

GatedMlp::GatedMlp(const Scope& s, int64_t d, int64_t ffn, bool bias, bool sparse, float cutoff_z,
                   int64_t stored_ffn)
    : ffn_(ffn),
      gate_(s.weights, s.name("gate.weight"), std::max(ffn, stored_ffn), d, bias ? s.name("gate.bias") : ""),
      up_(s.weights, s.name("up.weight"), std::max(ffn, stored_ffn), d, bias ? s.name("up.bias") : ""),
      down_(s.weights, s.name("down.weight"), d, std::max(ffn, stored_ffn), bias ? s.name("down.bias") : ""),
      sparse_(sparse),
      cutoff_z_(cutoff_z),
      pre_site_(s.site("hook_pre")),
      sparse_site_(sparse ? s.site("hook_sparse_gate") : -1),
      pre_linear_site_(s.site("hook_pre_linear")),
      post_site_(s.site("hook_post")) {
  if (stored_ffn > ffn) {
    gate_ = gate_.prefix(ffn, d);
    up_ = up_.prefix(ffn, d);
    down_ = down_.prefix(d, ffn);
  }
}

void GatedMlp::operator()(const Forward& f, const float* h, float* out) const {
  const int64_t M = f.rows(), F = ffn_;
  Workspace::Frame ws(*f.workspace);
  float* const gate = ws.take(M * F);
  float* const up = ws.take(M * F);
  gate_(f.device, h, M, gate);
  up_(f.device, h, M, up);
  f.offer(pre_site_, gate, {F});
  if (sparse_) {
    ops::dispatch::gaussian_topk(f.device, DType::kF32, gate, gate, M, F, cutoff_z_);
    f.offer(sparse_site_, gate, {F});
  }
  f.offer(pre_linear_site_, up, {F});
  ops::dispatch::geglu(f.device, DType::kF32, gate, up, gate, M * F);
  f.offer(post_site_, gate, {F});
  down_(f.device, gate, M, out);
}

Mlp::Mlp(const Scope& s, int64_t d, int64_t ffn)
    : ffn_(ffn),
      in_(s.weights, s.name("in.weight"), ffn, d, s.name("in.bias")),
      out_(s.weights, s.name("out.weight"), d, ffn, s.name("out.bias")),
      pre_site_(s.site("hook_pre")),
      post_site_(s.site("hook_post")) {}

void Mlp::operator()(const Forward& f, const float* h, float* out) const {
  const int64_t M = f.rows(), F = ffn_;
  Workspace::Frame ws(*f.workspace);
  float* const mid = ws.take(M * F);
  in_(f.device, h, M, mid);
  f.offer(pre_site_, mid, {F});
  ops::dispatch::gelu_tanh(f.device, DType::kF32, mid, mid, M * F);
  f.offer(post_site_, mid, {F});
  out_(f.device, mid, M, out);
}

}  // namespace gemmacpp::nn
