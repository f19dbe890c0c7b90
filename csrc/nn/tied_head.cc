#include "csrc/nn/tied_head.h"

#include "csrc/cpu/rms_norm.h"
#include "csrc/cpu/softcap.h"
#include "csrc/nn/weight_ops.h"

namespace gemmacpp {

void tied_head(const PackedBatch& p, bool last_only, float* x, const WeightTensor& final_norm,
               float eps, bool unit_offset, const WeightTensor& embed, float final_softcap,
               HookSet* hooks, float* logits) {
  const int64_t V = embed.shape[0], d = embed.shape[1];
  // Only the rows whose logits are wanted go through the head (one per sequence with last_only;
  // the head is most of a small model's prefill cost at a 262k vocabulary).
  const PackedBatch head = p.head_rows(last_only, x, d);
  const PackedHooks offer(hooks, head);
  cpu::rms_norm(DType::kF32, x, x, head.M, d, final_norm.dtype, final_norm.data, eps, unit_offset);
  offer(HookPoint::kFinalNorm, -1, x, {d});
  model_ops::linear(x, head.M, embed, nullptr, logits);
  head.spread(logits, V);
  if (final_softcap > 0) cpu::softcap(DType::kF32, logits, logits, head.B * head.T * V, final_softcap);
  offer.spread(HookPoint::kLogits, -1, logits, V);
}

}  // namespace gemmacpp
