#include "csrc/models/griffin/griffin.h"

#include <utility>
#include <variant>

#include "csrc/core/error.h"
#include "csrc/models/griffin/config.h"
#include "csrc/nn/attention.h"
#include "csrc/nn/decoder.h"
#include "csrc/nn/mlp.h"
#include "csrc/nn/norm.h"
#include "csrc/nn/recurrent.h"

namespace gemmacpp::griffin {
namespace {

using nn::Forward;
using nn::LayerConfig;
using nn::ModelConfig;
using nn::Residual;
using nn::Scope;

// Local multi-query attention over the window with partial RoPE, an o_proj bias, and a cache that
// keeps a ring of exactly `window` rows whatever the cache's length (the reference's has one size).
nn::AttentionSpec local_attention(const ModelConfig& c, int64_t i) {
  nn::AttentionSpec a = nn::attention_spec(c, i);
  a.o_bias = true;
  a.fixed_ring = true;
  return a;
}

using Mixer = std::variant<nn::RecurrentBlock, nn::Attention>;

Mixer make_mixer(const ModelConfig& c, int64_t i, const Scope& s) {
  const LayerConfig& l = c.layers[size_t(i)];
  if (l.mixer == nn::Mixer::kRecurrent) {
    return nn::RecurrentBlock(s, c.d, c.lru_width, c.n_heads, c.conv1d_width, i);
  }
  return nn::Attention(s.sub("attn"), local_attention(c, i), i);
}

// One Griffin layer, members in forward order (the order their hook sites are numbered in). An
// attention layer offers hook_attn_out after its mixer; a recurrent one has its own sites.
struct GriffinLayer {
  int resid_pre;
  nn::RMSNorm ln1;
  Mixer mixer;
  int attn_out;  // -1 on recurrent layers
  int resid_mid;
  nn::RMSNorm ln2;
  nn::GatedMlp mlp;
  int mlp_out, resid_post;

  GriffinLayer(const ModelConfig& c, int64_t i, const Scope& s)
      : resid_pre(s.site("hook_resid_pre")),
        ln1(s.weights, s.name("ln1.weight"), c.d, c.norm_eps, /*unit_offset=*/true),
        mixer(make_mixer(c, i, s)),
        attn_out(std::holds_alternative<nn::Attention>(mixer) ? s.site("hook_attn_out") : -1),
        resid_mid(s.site("hook_resid_mid")),
        ln2(s.weights, s.name("ln2.weight"), c.d, c.norm_eps, /*unit_offset=*/true),
        mlp(s.sub("mlp"), c.d, c.ffn, /*bias=*/true),
        mlp_out(s.site("hook_mlp_out")),
        resid_post(s.site("hook_resid_post")) {}

  nn::SlotSpec cache_slot(int64_t max_len) const {
    if (const auto* a = std::get_if<nn::Attention>(&mixer)) return a->cache_slot(max_len);
    return std::get<nn::RecurrentBlock>(mixer).cache_slot();
  }

  void operator()(const Forward& f, const Residual& r) const {
    f.offer(resid_pre, r.x, {r.d});
    ln1(f.device, r.x, r.h, f.rows());
    std::visit([&](const auto& block) { block(f, r.h, r.out); }, mixer);
    if (attn_out >= 0) f.offer(attn_out, r.out, {r.d});
    r.add_out(f, resid_mid);
    ln2(f.device, r.x, r.h, f.rows());
    mlp(f, r.h, r.out);
    f.offer(mlp_out, r.out, {r.d});
    r.add_out(f, resid_post);
  }
};

}  // namespace

std::shared_ptr<nn::TextModel> make_model(ModelConfig config, std::shared_ptr<const WeightFile> weights) {
  GC_CHECK(config.family == "recurrent_gemma", ValueError, "RecurrentGemma: the config is for ",
           config.family, ", not recurrent_gemma");
  GC_CHECK(weights->format == "safetensors", NotImplementedError, "'", weights->path,
           "': RecurrentGemma loads from HF safetensors checkpoints only");
  return std::make_shared<nn::Decoder<GriffinLayer>>(std::move(config), std::move(weights), name_map());
}

}  // namespace gemmacpp::griffin
