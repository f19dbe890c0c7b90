#include "csrc/nn/embedding.h"

#include <cstring>

#include "csrc/core/error.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {

TokenEmbedding::TokenEmbedding(const Scope& s, const std::string& name, int64_t vocab, int64_t d, float scale)
    : table_(&s.weights.matrix(s.name(name), {vocab, d})), scale_(scale), site_(s.site("hook_embed")) {
  if (table_->quantized) parse_qtype(table_->type_name(), &qtype_);  // checked when bound
}

void TokenEmbedding::operator()(const Forward& f, const std::vector<int64_t>& ids, const ForwardArgs& args,
                                float* x) const {
  const PackedBatch& p = f.batch;
  const int64_t M = p.M, d = table_->shape[1];
  if (table_->quantized) {
    const uint64_t row_bytes = table_->nbytes / uint64_t(table_->shape[0]);
    ops::dispatch::embedding_rows_quantized(f.device, qtype_, table_->data, row_bytes, ids.data(), M, d,
                                            scale_, x);
  } else {
    ops::dispatch::embedding_rows(f.device, table_->dtype, table_->data, ids.data(), M, d, scale_, x);
  }
  if (args.embeds) {
    GC_CHECK(args.embed_mask, ValueError, "forward: embeds without embed_mask");
    for (int64_t b = 0; b < args.B; ++b) {
      for (int64_t t = 0; t < p.count[size_t(b)]; ++t) {
        if (args.embed_mask[b * args.T + t]) {
          std::memcpy(x + (p.offset[size_t(b)] + t) * d, args.embeds + (b * args.T + t) * d,
                      size_t(d) * sizeof(float));
        }
      }
    }
  }
  f.offer(site_, x, {d});
}

}  // namespace gemmacpp::nn
