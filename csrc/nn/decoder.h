// Decoder<Layer>: a decoder family as its layer recipe. The Layer type is the family's one
// contribution besides its config reader and name map: a struct of blocks (norms, attention or a
// recurrent block, an MLP) whose constructor binds them in forward order, so that their hook sites
// are numbered in the order a forward reaches them, and whose call runs one layer on the residual
// stream. Everything else (the batch packing, the embedding, the cache, the head) is TextModel's.
//
//   struct Layer {
//     Layer(const ModelConfig& c, int64_t index, const Scope& s);   // s: "blocks.{index}."
//     SlotSpec cache_slot(int64_t max_len) const;
//     void operator()(const Forward& f, const Residual& r) const;
//   };
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "csrc/io/weight_binder.h"
#include "csrc/nn/scope.h"
#include "csrc/nn/text_model.h"

namespace gemmacpp::nn {

template <class Layer>
class Decoder final : public TextModel {
 public:
  // Binds every tensor the config needs through `names` (ValueError naming a missing or misshapen
  // one): the token table "embed.weight", the per-layer inputs (nn/per_layer.h) when
  // config.per_layer_input, AltUp's stream projections (nn/altup.h) when config.altup_streams, the
  // layers below "blocks.{i}.", "ln_final.weight".
  Decoder(ModelConfig config, std::shared_ptr<const WeightFile> weights, const NameMap& names)
      : TextModel(std::move(config), std::move(weights)) {
    const ModelConfig& c = config_;
    const WeightBinder binder(*weights_, names);
    const Scope root{binder, sites_, ""};
    embed_.emplace(root, "embed.weight", c.vocab, c.d, c.embed_scale);
    if (c.per_layer_input > 0) per_layer_.emplace(root, c);
    if (c.altup_streams > 0) altup_spread_.emplace(root, "altup_proj", c.d, c.altup_streams, "altup.hook_streams");
    layers_.reserve(size_t(c.n_layers));
    for (int64_t i = 0; i < c.n_layers; ++i) layers_.emplace_back(c, i, root.sub("blocks." + std::to_string(i)));
    if (c.altup_streams > 0) {
      altup_gather_.emplace(root, "altup_unembed", c.d, c.altup_streams, "altup.hook_unembedded");
    }
    head_.emplace(root, "ln_final.weight", embed_->table(), c.norm_eps, c.norm_unit_offset, c.final_softcap);
  }

 private:
  SlotSpec layer_cache_slot(int64_t layer, int64_t max_len) const override {
    return layers_[size_t(layer)].cache_slot(max_len);
  }
  void layer_forward(int64_t layer, const Forward& f, const Residual& r) const override {
    layers_[size_t(layer)](f, r);
  }

  std::vector<Layer> layers_;
};

}  // namespace gemmacpp::nn
