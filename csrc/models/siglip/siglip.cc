#include "csrc/models/siglip/siglip.h"

#include <cmath>
#include <utility>

#include "csrc/core/error.h"
#include "csrc/models/siglip/config.h"
#include "csrc/nn/attention.h"
#include "csrc/nn/encoder.h"
#include "csrc/nn/forward.h"
#include "csrc/nn/mlp.h"
#include "csrc/nn/norm.h"
#include "csrc/nn/residual.h"
#include "csrc/nn/scope.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::siglip {

using nn::Forward;
using nn::Residual;
using nn::Scope;
using nn::VisionConfig;

namespace {

// Every patch of an image sees every patch of that image; no positions (they were added to the
// embeddings), biases on all four projections.
nn::AttentionSpec attention_spec(const VisionConfig& c) {
  nn::AttentionSpec a;
  a.d = c.d, a.heads = c.n_heads, a.kv_heads = c.n_heads, a.head_dim = c.head_dim;
  a.qkv_bias = a.o_bias = true;
  a.causal = false;
  a.rope = false;
  a.scale = float(1.0 / std::sqrt(double(c.head_dim)));
  return a;
}

NameMap name_map(const std::string& prefix) {
  std::vector<std::pair<std::string, std::string>> names = {
      {"vision.embed.patch.weight", "embeddings.patch_embedding.weight"},
      {"vision.embed.patch.bias", "embeddings.patch_embedding.bias"},
      {"vision.embed.pos.weight", "embeddings.position_embedding.weight"},
      {"vision.ln_final.weight", "post_layernorm.weight"},
      {"vision.ln_final.bias", "post_layernorm.bias"},
  };
  const std::pair<const char*, const char*> modules[] = {
      {"ln1", "layer_norm1"},       {"ln2", "layer_norm2"},       {"attn.q", "self_attn.q_proj"},
      {"attn.k", "self_attn.k_proj"}, {"attn.v", "self_attn.v_proj"}, {"attn.o", "self_attn.out_proj"},
      {"mlp.in", "mlp.fc1"},        {"mlp.out", "mlp.fc2"},
  };
  for (const auto& [ours, theirs] : modules) {
    for (const char* param : {".weight", ".bias"}) {
      names.emplace_back(std::string("vision.blocks.{i}.") + ours + param,
                         std::string("encoder.layers.{i}.") + theirs + param);
    }
  }
  return NameMap(prefix, std::move(names));
}

}  // namespace

// One pre-LayerNorm ViT layer, members in forward order (the order of their hook sites).
struct VitLayer {
  int resid_pre;
  nn::LayerNorm ln1;
  nn::Attention attn;
  int attn_out, resid_mid;
  nn::LayerNorm ln2;
  nn::Mlp mlp;
  int mlp_out, resid_post;

  VitLayer(const VisionConfig& c, int64_t i, const Scope& s)
      : resid_pre(s.site("hook_resid_pre")),
        ln1(s.weights, s.name("ln1"), c.d, c.norm_eps),
        attn(s.sub("attn"), attention_spec(c), i),
        attn_out(s.site("hook_attn_out")),
        resid_mid(s.site("hook_resid_mid")),
        ln2(s.weights, s.name("ln2"), c.d, c.norm_eps),
        mlp(s.sub("mlp"), c.d, c.ffn),
        mlp_out(s.site("hook_mlp_out")),
        resid_post(s.site("hook_resid_post")) {}

  void operator()(const Forward& f, const Residual& r) const {
    f.offer(resid_pre, r.x, {r.d});
    ln1(f.device, r.x, r.h, f.rows());
    attn(f, r.h, r.out);
    f.offer(attn_out, r.out, {r.d});
    r.add_out(f, resid_mid);
    ln2(f.device, r.x, r.h, f.rows());
    mlp(f, r.h, r.out);
    f.offer(mlp_out, r.out, {r.d});
    r.add_out(f, resid_post);
  }
};

struct VisionTower::Parts {
  const WeightTensor* patch_w;  // [d, C, patch, patch], read as [d, C * patch^2]
  std::vector<float> patch_b, pos;  // [d], [P, d]
  int embed_site;
  nn::Encoder<VitLayer> encoder;
  nn::LayerNorm ln_final;
  int out_site;

  Parts(const VisionConfig& c, const Scope& root)
      : patch_w(&root.weights.dense(root.name("embed.patch.weight"), {c.d, c.channels, c.patch, c.patch})),
        patch_b(root.weights.f32(root.name("embed.patch.bias"), {c.d})),
        pos(root.weights.f32(root.name("embed.pos.weight"), {c.n_patches(), c.d})),
        embed_site(root.site("hook_embed")),
        encoder(c, c.n_layers, root),
        ln_final(root.weights, root.name("ln_final"), c.d, c.norm_eps),
        out_site(root.site("hook_out")) {}
};

VisionTower::VisionTower(VisionConfig config, std::shared_ptr<const WeightFile> weights, const std::string& prefix)
    : config_(std::move(config)), weights_(std::move(weights)) {
  config_.validate();
  const WeightBinder binder(*weights_, name_map(prefix));
  parts_ = std::make_unique<Parts>(config_, Scope{binder, sites_, "vision."});
}

VisionTower::~VisionTower() = default;

void VisionTower::encode(const float* pixels, int64_t N, float* out, nn::HookSet* hooks) const {
  const VisionConfig& c = config_;
  GC_CHECK(N >= 1, ValueError, "encode_image: no images");
  const int64_t P = c.n_patches(), d = c.d, M = N * P, K = c.channels * c.patch * c.patch;
  const Device device;
  // Each image is one sequence of P patches, all of them real.
  const nn::PackedBatch batch(N, P, nullptr, 0, {});
  const std::vector<int64_t> positions;  // the tower has no rotary positions
  nn::Workspace workspace(device);
  const Forward f{device, batch, positions, nullptr, nn::PackedHooks(hooks, batch), nullptr, true, &workspace};
  float* x = out;  // the residual stream lives in the output
  {
    const nn::Buffer cols(M * K, device);
    ops::dispatch::image_patches(device, pixels, N, c.channels, c.image_size, c.patch, cols);
    ops::dispatch::linear(device, cols, K, M, K, parts_->patch_w->dtype, parts_->patch_w->data, K, d,
                          parts_->patch_b.data(), x, d);
  }
  for (int64_t n = 0; n < N; ++n) ops::dispatch::add_into(device, x + n * P * d, parts_->pos.data(), P * d);
  f.offer(parts_->embed_site, x, {d});
  nn::Workspace::Frame ws(workspace);
  parts_->encoder(f, Residual{x, ws.take(M * d), ws.take(M * d), d});
  parts_->ln_final(device, x, x, M);
  f.offer(parts_->out_site, x, {d});
}

std::shared_ptr<VisionTower> load(const std::string& path, const json::Value& config, const std::string& what) {
  VisionConfig c = config_from_hf(config, what);
  auto weights = std::make_shared<const WeightFile>(open_weights(path));
  // A bare SiglipVisionModel saves its tensors under "vision_model." in older files, none in newer.
  std::string prefix;
  for (const char* p : {"", "vision_model.", "vision_tower.", "model.vision_tower."}) {
    if (weights->find(std::string(p) + "embeddings.patch_embedding.weight")) {
      prefix = p;
      break;
    }
  }
  return std::make_shared<VisionTower>(std::move(c), std::move(weights), prefix);
}

}  // namespace gemmacpp::siglip
