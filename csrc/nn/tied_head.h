// The head of the Gemma-family forwards (Gemma, RecurrentGemma): final RMSNorm, unembedding tied
// to the token embedding (logits = h E^T), final soft-cap, with the hooks
// ln_final.hook_normalized and hook_logits. One function, so that both forwards treat last_only,
// padding and the hooks one way.
#pragma once

#include <cstdint>

#include "csrc/nn/hooks.h"
#include "csrc/nn/packed_batch.h"
#include "csrc/io/weights.h"

namespace gemmacpp {

// x [p.M, d]: the residual stream of the forward's packed rows (overwritten); embed [V, d].
// logits: [B, T, V], or with last_only [B, 1, V] (each sequence's last token; zeros for an empty
// one), padding rows zero. final_softcap 0: none.
void tied_head(const PackedBatch& p, bool last_only, float* x, const WeightTensor& final_norm,
               float eps, bool unit_offset, const WeightTensor& embed, float final_softcap,
               HookSet* hooks, float* logits);

}  // namespace gemmacpp
