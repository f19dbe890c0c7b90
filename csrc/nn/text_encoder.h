// A text encoder as its callers see it (EmbeddingGemma 1 and 2): a ragged batch of token sequences
// in, one vector per sequence out, with hooks. One implementation of the encode loop serves every
// encoder family: pack the batch, embed (and the per-layer inputs, where the config has them), run
// the layers (every token sees the others of its sequence, within each layer's window), the final
// norm (and a per-token projection, where the config has one), then the sentence head (mean
// pooling, dense layers, L2 norm). A family supplies its layer recipe (SentenceEncoder<Layer>).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "csrc/io/weight_binder.h"
#include "csrc/io/weights.h"
#include "csrc/nn/config.h"
#include "csrc/nn/embedding.h"
#include "csrc/nn/encoder.h"
#include "csrc/nn/hooks.h"
#include "csrc/nn/norm.h"
#include "csrc/nn/per_layer.h"
#include "csrc/nn/sentence_head.h"

namespace gemmacpp::nn {

// tokens [B, T] (ids in [0, vocab)); lengths[b] (0..T; null: all T) tokens of row b are real.
// pool_skip (null: none): per row, leading tokens left out of the mean pooling (a prompt, when the
// pipeline does not pool over it). out: [B, out_dim] float32.
struct EncodeArgs {
  const int64_t* tokens = nullptr;
  int64_t B = 0, T = 0;
  const int64_t* lengths = nullptr;
  const int64_t* pool_skip = nullptr;
  float* out = nullptr;
  HookSet* hooks = nullptr;
};

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  TextEncoder(const TextEncoder&) = delete;
  TextEncoder& operator=(const TextEncoder&) = delete;

  const ModelConfig& config() const { return config_; }
  const WeightFile& weights() const { return *weights_; }
  const HookSites& hook_sites() const { return sites_; }
  int64_t out_dim() const { return head_->out_dim(); }
  const SentenceHeadSpec& head() const { return head_->spec(); }

  // ValueError naming encode for a bad batch.
  void encode(const EncodeArgs& args) const;

 protected:
  TextEncoder(ModelConfig config, std::shared_ptr<const WeightFile> weights);
  virtual void run_layers(const Forward& f, const Residual& r) const = 0;

  ModelConfig config_;
  std::shared_ptr<const WeightFile> weights_;
  HookSites sites_;
  Device device_;
  std::optional<TokenEmbedding> embed_;  // built first, so that hook_embed comes first
  std::optional<PerLayerInputs> per_layer_;
  std::optional<RMSNorm> final_norm_;    // built after the layers
  int final_site_ = -1;
  std::optional<Linear> token_projection_;
  int projected_site_ = -1;
  std::optional<SentenceHead> head_;
};

// A sentence encoder made of the family's Layer (a decoder's recipe, run bidirectionally): the
// token table "embed.weight", the per-layer inputs (nn/per_layer.h) when config.per_layer_input,
// the layers below "blocks.{i}.", "ln_final.weight", "token_proj.weight" [token_projection, d]
// when config.token_projection (site hook_projected), then the head over what that leaves.
template <class Layer>
class SentenceEncoder final : public TextEncoder {
 public:
  SentenceEncoder(ModelConfig config, std::shared_ptr<const WeightFile> weights, const NameMap& names,
                  SentenceHeadSpec head)
      : TextEncoder(std::move(config), std::move(weights)) {
    const ModelConfig& c = config_;
    const WeightBinder binder(*weights_, names);
    const Scope root{binder, sites_, ""};
    embed_.emplace(root, "embed.weight", c.vocab, c.d, c.embed_scale);
    if (c.per_layer_input > 0) {
      per_layer_.emplace(root, c);
    }
    layers_.emplace(c, c.n_layers, root);
    final_norm_.emplace(binder, "ln_final.weight", c.d, c.norm_eps, c.norm_unit_offset);
    final_site_ = root.site("ln_final.hook_normalized");
    int64_t width = c.d;
    if (c.token_projection > 0) {
      token_projection_.emplace(binder, "token_proj.weight", c.token_projection, c.d);
      projected_site_ = root.site("hook_projected");
      width = c.token_projection;
    }
    head_.emplace(root, width, std::move(head));
  }

 private:
  void run_layers(const Forward& f, const Residual& r) const override { (*layers_)(f, r); }

  std::optional<Encoder<Layer>> layers_;
};

}  // namespace gemmacpp::nn
