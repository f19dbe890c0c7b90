// The arguments every model's forward takes. GemmaModel::Args adds its vision-language inputs to
// them and GriffinModel::Args is them as they are, so that the packing (packed_batch.h) and the
// Python bindings (bindings/forward_args.h) fill and read both in one way.
#pragma once

#include <cstdint>

#include "csrc/nn/hooks.h"

namespace gemmacpp {

// tokens [B, T] (ids in [0, vocab)); rows may be right-padded: lengths[b] (0..T) tokens of row b
// are real, the rest are never read. logits: [B, T, vocab] float32, or [B, 1, vocab] with
// last_only. cache: the model's own cache (KVCache, GriffinCache), or nullptr.
template <class Cache>
struct ForwardArgs {
  const int64_t* tokens = nullptr;
  int64_t B = 0, T = 0;
  const int64_t* lengths = nullptr;  // [B]; nullptr: every row has T tokens
  float* logits = nullptr;
  bool last_only = false;
  Cache* cache = nullptr;
  HookSet* hooks = nullptr;  // read or edit activations (csrc/nn/hooks.h); nullptr: none
};

}  // namespace gemmacpp
