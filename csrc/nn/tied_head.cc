#include "csrc/nn/tied_head.h"

#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {

TiedHead::TiedHead(const Scope& s, const std::string& norm_name, const WeightTensor& embedding, double eps,
                   bool unit_offset, float softcap)
    : norm_(s.weights, s.name(norm_name), embedding.shape[1], eps, unit_offset),
      unembed_(embedding),
      softcap_(softcap),
      normalized_site_(s.site("ln_final.hook_normalized")),
      logits_site_(s.site("hook_logits")) {}

void TiedHead::operator()(const Forward& f, bool last_only, float* x, float* logits) const {
  const int64_t V = unembed_.out_features(), d = unembed_.in_features();
  const PackedBatch head = f.batch.head_rows(last_only, x, d);
  const PackedHooks offer(f.hooks(), head);
  norm_(f.device, x, x, head.M);
  offer(normalized_site_, x, {d});
  unembed_(f.device, x, head.M, logits);
  head.spread(logits, V);
  if (softcap_ > 0) ops::dispatch::softcap(f.device, DType::kF32, logits, logits, head.B * head.T * V, softcap_);
  offer.spread(logits_site_, logits, V);
}

}  // namespace gemmacpp::nn
