// One Gemma layer, the family's recipe over the shared blocks: the Gemma 1/2/3 and Gemma 4
// decoders (gemma.cc, gemma4.cc) and the EmbeddingGemma 1/2 encoders all run it; the config
// decides causal or bidirectional attention, and whether the layer runs experts beside its MLP
// (Gemma 4 26B-A4B), gates in per-layer inputs and scales its output (EmbeddingGemma 2, Gemma 4).
#pragma once

#include <cstdint>
#include <optional>

#include "csrc/nn/attention.h"
#include "csrc/nn/config.h"
#include "csrc/nn/forward.h"
#include "csrc/nn/mlp.h"
#include "csrc/nn/moe.h"
#include "csrc/nn/norm.h"
#include "csrc/nn/per_layer.h"
#include "csrc/nn/residual.h"
#include "csrc/nn/scope.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::gemma {

// One Gemma layer. Gemma 2 and 3 wrap attention and MLP in "sandwich" norms (ln1_post, ln2_post),
// which Gemma 1 does not have (they stay unbound). With experts, the dense MLP's output gets its
// own norm (mlp.ln_post, site mlp.hook_out) and the experts' (moe) is added to it before ln2_post.
// Members are declared in forward order: that is the order their hook sites are numbered in.
struct GemmaLayer {
  int resid_pre;
  nn::RMSNorm ln1;
  int ln1_normalized;
  nn::Attention attn;
  nn::RMSNorm ln1_post;
  int attn_out, resid_mid;
  nn::RMSNorm ln2;
  int ln2_normalized;
  nn::GatedMlp mlp;
  nn::RMSNorm mlp_ln_post;  // with experts
  int mlp_out_dense;        // with experts: mlp.hook_out
  std::optional<nn::Moe> moe;
  nn::RMSNorm ln2_post;
  int mlp_out;
  std::optional<nn::PerLayerGate> ple;  // config.per_layer_input > 0
  float scalar;                         // config.layer_scalar: the stored blocks.{i}.layer_scalar; else 1
  int resid_post;

  GemmaLayer(const nn::ModelConfig& c, int64_t i, const nn::Scope& s)
      : resid_pre(s.site("hook_resid_pre")),
        ln1(s.weights, s.name("ln1.weight"), c.d, c.norm_eps, c.norm_unit_offset),
        ln1_normalized(s.site("ln1.hook_normalized")),
        attn(s.sub("attn"), nn::attention_spec(c, i), i),
        ln1_post(c.sandwich_norms ? nn::RMSNorm(s.weights, s.name("ln1_post.weight"), c.d, c.norm_eps,
                                                c.norm_unit_offset)
                                  : nn::RMSNorm()),
        attn_out(s.site("hook_attn_out")),
        resid_mid(s.site("hook_resid_mid")),
        ln2(s.weights, s.name("ln2.weight"), c.d, c.norm_eps, c.norm_unit_offset),
        ln2_normalized(s.site("ln2.hook_normalized")),
        mlp(s.sub("mlp"), c.d, c.layer_ffn(i), /*bias=*/false),
        mlp_ln_post(c.n_experts ? nn::RMSNorm(s.weights, s.name("mlp.ln_post.weight"), c.d, c.norm_eps,
                                              c.norm_unit_offset)
                                : nn::RMSNorm()),
        mlp_out_dense(c.n_experts ? s.site("mlp.hook_out") : -1),
        moe(c.n_experts ? std::optional<nn::Moe>(std::in_place, s.sub("moe"), c) : std::nullopt),
        ln2_post(c.sandwich_norms ? nn::RMSNorm(s.weights, s.name("ln2_post.weight"), c.d, c.norm_eps,
                                                c.norm_unit_offset)
                                  : nn::RMSNorm()),
        mlp_out(s.site("hook_mlp_out")),
        ple(c.per_layer_input > 0 ? std::optional<nn::PerLayerGate>(std::in_place, s, c.d, c.n_layers,
                                                                    c.per_layer_input, i, c.norm_eps,
                                                                    c.norm_unit_offset)
                                  : std::nullopt),
        scalar(c.layer_scalar ? s.weights.f32(s.name("layer_scalar"), {1})[0] : 1.0f),
        resid_post(s.site("hook_resid_post")) {}

  nn::SlotSpec cache_slot(int64_t max_len) const { return attn.cache_slot(max_len); }

  void operator()(const nn::Forward& f, const nn::Residual& r) const {
    const int64_t M = f.rows();
    f.offer(resid_pre, r.x, {r.d});
    ln1(f.device, r.x, r.h, M);
    f.offer(ln1_normalized, r.h, {r.d});
    attn(f, r.h, r.out);
    if (ln1_post.bound()) ln1_post(f.device, r.out, r.out, M);
    f.offer(attn_out, r.out, {r.d});
    r.add_out(f, resid_mid);
    ln2(f.device, r.x, r.h, M);
    f.offer(ln2_normalized, r.h, {r.d});
    mlp(f, r.h, r.out);
    if (moe) {
      mlp_ln_post(f.device, r.out, r.out, M);
      f.offer(mlp_out_dense, r.out, {r.d});
      nn::Workspace::Frame ws(*f.workspace);
      float* const experts = ws.take(M * r.d);
      (*moe)(f, r.x, experts);  // the router reads the stream itself
      ops::dispatch::add_into(f.device, r.out, experts, M * r.d);
    }
    if (ln2_post.bound()) ln2_post(f.device, r.out, r.out, M);
    f.offer(mlp_out, r.out, {r.d});
    if (!ple && scalar == 1.0f) return r.add_out(f, resid_post);
    ops::dispatch::add_into(f.device, r.x, r.out, f.rows() * r.d);
    if (ple) (*ple)(f, r);
    if (scalar != 1.0f) ops::dispatch::scale_into(f.device, r.x, scalar, f.rows() * r.d);
    f.offer(resid_post, r.x, {r.d});
  }
};

}  // namespace gemmacpp::gemma
