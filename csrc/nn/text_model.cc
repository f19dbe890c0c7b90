#include "csrc/nn/text_model.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "csrc/core/error.h"
#include "csrc/nn/attention.h"

namespace gemmacpp::nn {

TextModel::TextModel(ModelConfig config, std::shared_ptr<const WeightFile> weights)
    : config_(std::move(config)), weights_(std::move(weights)) {
  config_.validate();
}

std::vector<SlotSpec> TextModel::cache_layout(int64_t max_len) const {
  std::vector<SlotSpec> out;
  for (int64_t l = 0; l < config_.n_layers; ++l) out.push_back(layer_cache_slot(l, max_len));
  return out;
}

std::shared_ptr<Cache> TextModel::new_cache(int64_t batch, int64_t max_len) const {
  GC_CHECK(max_len >= 1, ValueError, "new_cache: max_len must be >= 1, got ", max_len);
  return std::make_shared<Cache>(cache_layout(max_len), batch, max_len);
}

void TextModel::forward(const ForwardArgs& args) const {
  const ModelConfig& c = config_;
  Cache* cache = args.cache;
  CacheExtent extent;
  std::optional<Cache::Use> in_use;
  if (cache) {
    in_use.emplace(*cache, "forward");
    // A cache whose layers keep every position holds at most max_len of them: the packing checks
    // that this call's tokens fit.
    extent = {&cache->lengths(), cache->n_layers(), cache->bounded() ? cache->max_len() : -1};
  }
  const PackedBatch p(args.B, args.T, args.lengths, c.n_layers, extent);
  if (cache) cache->check_layout(cache_layout(cache->max_len()));
  const std::vector<int64_t> ids = p.ids(args.tokens, c.vocab, args.embed_mask);  // masked: replaced
  const std::vector<int64_t> positions = p.positions(args.position_offset);
  if (p.M == 0) {
    std::memset(args.logits, 0, size_t((args.last_only ? p.B : p.B * p.T) * c.vocab) * sizeof(float));
    return;
  }
  const std::vector<std::vector<int64_t>> spans = spans_by_row(args, p.count);
  Workspace workspace(device_);
  SharedKv shared_kv;
  if (c.shares_kv()) shared_kv.layers.resize(size_t(c.n_layers));
  Forward f{device_, p, positions, cache, PackedHooks(args.hooks, p), &spans, args.span_in_window,
            &workspace, nullptr, c.shares_kv() ? &shared_kv : nullptr};
  const int64_t d = c.d;
  Workspace::Frame ws(workspace);
  float* const x = ws.take(p.M * d * std::max<int64_t>(1, c.altup_streams));  // AltUp: N streams
  float* const h = ws.take(p.M * d);
  float* const out = ws.take(p.M * d);
  (*embed_)(f, ids, args, x);
  if (per_layer_) {
    float* const ple = ws.take(p.M * per_layer_->floats_per_row());
    (*per_layer_)(f, ids, x, ple);
    f.per_layer_input = ple;
  }
  if (altup_spread_) (*altup_spread_)(f, x, /*spread=*/true);
  const Residual r{x, h, out, d};
  for (int64_t l = 0; l < c.n_layers; ++l) layer_forward(l, f, r);
  if (altup_gather_) {
    (*altup_gather_)(f, x, /*spread=*/false);
    altup_gather_->mean(f, x, x);
  }
  if (cache) {
    for (int64_t b = 0; b < p.B; ++b) cache->advance(b, p.count[size_t(b)]);
  }
  (*head_)(f, args.last_only, x, args.logits);
}

std::vector<std::vector<int64_t>> spans_by_row(const ForwardArgs& args, const std::vector<int64_t>& count) {
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(args.B));
  for (int64_t i = 0; i < args.n_spans; ++i) {
    const int64_t b = args.spans[3 * i], s = args.spans[3 * i + 1], e = args.spans[3 * i + 2];
    GC_CHECK(b >= 0 && b < args.B, ValueError, "forward: span ", i, " names row ", b, " of ", args.B);
    std::vector<int64_t>& row = out[size_t(b)];
    GC_CHECK(s >= 0 && s < e && e <= count[size_t(b)] && (row.empty() || s >= row.back()), ValueError,
             "forward: span [", s, ", ", e, ") of row ", b, " is empty, outside its ", count[size_t(b)],
             " tokens, or overlaps or precedes the previous span");
    row.push_back(s);
    row.push_back(e);
  }
  return out;
}

}  // namespace gemmacpp::nn
