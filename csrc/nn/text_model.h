// A text model as its callers see it (the Python binding, generation, scoring): forward over a
// ragged batch with a cache and hooks, new_cache, its config and hook sites. One implementation of
// the forward serves every decoder family: pack the batch, embed, run the layers, advance the
// cache, apply the head. A family supplies only its layer recipe (Decoder<Layer>, decoder.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "csrc/io/weights.h"
#include "csrc/nn/altup.h"
#include "csrc/nn/cache.h"
#include "csrc/nn/config.h"
#include "csrc/nn/embedding.h"
#include "csrc/nn/forward_args.h"
#include "csrc/nn/hooks.h"
#include "csrc/nn/per_layer.h"
#include "csrc/nn/residual.h"
#include "csrc/nn/tied_head.h"

namespace gemmacpp::nn {

class TextModel {
 public:
  virtual ~TextModel() = default;
  TextModel(const TextModel&) = delete;
  TextModel& operator=(const TextModel&) = delete;

  const ModelConfig& config() const { return config_; }
  const WeightFile& weights() const { return *weights_; }
  const HookSites& hook_sites() const { return sites_; }

  // Runs a batch (nn/forward_args.h); ValueError naming forward for a bad batch or cache.
  void forward(const ForwardArgs& args) const;
  // An empty cache for `batch` sequences of up to max_len positions.
  std::shared_ptr<Cache> new_cache(int64_t batch, int64_t max_len) const;
  // The cache slots of every layer for a cache of max_len positions.
  std::vector<SlotSpec> cache_layout(int64_t max_len) const;

 protected:
  TextModel(ModelConfig config, std::shared_ptr<const WeightFile> weights);

  // The family's layers, in order.
  virtual SlotSpec layer_cache_slot(int64_t layer, int64_t max_len) const = 0;
  virtual void layer_forward(int64_t layer, const Forward& f, const Residual& r) const = 0;

  ModelConfig config_;
  std::shared_ptr<const WeightFile> weights_;
  HookSites sites_;
  Device device_;
  std::optional<TokenEmbedding> embed_;  // built before the layers, so that hook_embed comes first
  std::optional<PerLayerInputs> per_layer_;  // config.per_layer_input > 0
  // config.altup_streams: x is stream 0 of N, spread from the embedding before the layers and
  // gathered (projected back and averaged) after them.
  std::optional<AltUpStreams> altup_spread_, altup_gather_;
  std::optional<TiedHead> head_;         // built after them
};

// The forward's spans (ForwardArgs::spans) grouped by row as flat (start, end) pairs, checked.
std::vector<std::vector<int64_t>> spans_by_row(const ForwardArgs& args, const std::vector<int64_t>& count);

}  // namespace gemmacpp::nn
