#include "csrc/nn/text_encoder.h"

#include <cstring>

#include "csrc/core/error.h"
#include "csrc/nn/attention.h"

namespace gemmacpp::nn {

TextEncoder::TextEncoder(ModelConfig config, std::shared_ptr<const WeightFile> weights)
    : config_(std::move(config)), weights_(std::move(weights)) {
  config_.validate();
}

void TextEncoder::encode(const EncodeArgs& args) const {
  const ModelConfig& c = config_;
  const PackedBatch p(args.B, args.T, args.lengths, c.n_layers, {});
  const std::vector<int64_t> ids = p.ids(args.tokens, c.vocab);
  const std::vector<int64_t> positions = p.positions();
  if (args.pool_skip) {
    for (int64_t b = 0; b < p.B; ++b) {
      GC_CHECK(args.pool_skip[b] >= 0, ValueError, "encode: pool_skip[", b, "] is negative");
    }
  }
  if (p.M == 0) {
    std::memset(args.out, 0, size_t(p.B * out_dim()) * sizeof(float));
    return;
  }
  Workspace workspace(device_);
  SharedKv shared_kv;
  if (c.shares_kv()) shared_kv.layers.resize(size_t(c.n_layers));
  Forward f{device_, p, positions, nullptr, PackedHooks(args.hooks, p), nullptr, true, &workspace, nullptr,
            c.shares_kv() ? &shared_kv : nullptr};
  const int64_t d = c.d;
  Workspace::Frame ws(workspace);
  float* const x = ws.take(p.M * d);
  float* const h = ws.take(p.M * d);
  float* const out = ws.take(p.M * d);
  ForwardArgs tokens_only;  // no soft tokens replace rows of an encoder's input
  (*embed_)(f, ids, tokens_only, x);
  if (per_layer_) {
    float* const ple = ws.take(p.M * per_layer_->floats_per_row());
    (*per_layer_)(f, ids, x, ple);
    f.per_layer_input = ple;
  }
  run_layers(f, Residual{x, h, out, d});
  (*final_norm_)(device_, x, x, p.M);
  f.offer(final_site_, x, {d});
  const float* tokens = x;
  if (token_projection_) {
    float* const projected = ws.take(p.M * token_projection_->out_features());
    (*token_projection_)(device_, x, p.M, projected);
    f.offer(projected_site_, projected, {token_projection_->out_features()});
    tokens = projected;
  }
  (*head_)(f, tokens, args.pool_skip, args.out);
}

}  // namespace gemmacpp::nn
