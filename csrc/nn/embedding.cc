#include "csrc/nn/embedding.h"

#include <cstring>

#include "csrc/core/error.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {

TokenEmbedding::TokenEmbedding(const Scope& s, const std::string& name, int64_t vocab, int64_t d, float scale,
                               const std::string& site)
    : table_(&s.weights.matrix(s.name(name), {vocab, d})), scale_(scale), site_(site.empty() ? -1 : s.site(site)) {
  if (table_->quantized) parse_qtype(table_->type_name(), &qtype_);  // checked when bound
}

void TokenEmbedding::lookup(Device device, const int64_t* ids, int64_t M, float* out) const {
  const int64_t d = table_->shape[1];
  if (table_->quantized) {
    const uint64_t row_bytes = table_->nbytes / uint64_t(table_->shape[0]);
    ops::dispatch::embedding_rows_quantized(device, qtype_, table_->data, row_bytes, ids, M, d, scale_, out);
  } else {
    ops::dispatch::embedding_rows(device, table_->dtype, table_->data, ids, M, d, scale_, out);
  }
}

void TokenEmbedding::operator()(const Forward& f, const std::vector<int64_t>& ids, const ForwardArgs& args,
                                float* x) const {
  const PackedBatch& p = f.batch;
  const int64_t d = table_->shape[1];
  lookup(f.device, ids.data(), p.M, x);
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
