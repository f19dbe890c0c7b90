// The arguments of a text model's forward (nn::TextModel::forward), whatever the family, so that
// the packing and the one Python binding fill and read them in one way.
#pragma once

#include <cstdint>

#include "csrc/nn/cache.h"
#include "csrc/nn/hooks.h"

namespace gemmacpp::nn {

// tokens [B, T] (ids in [0, vocab)); rows may be right-padded: lengths[b] (0..T) tokens of row b
// are real, the rest are never read. logits: [B, T, vocab] float32, or [B, 1, vocab] with
// last_only. Without a cache every row starts at position 0; with one, row b continues its cached
// sequence at position cache->lengths()[b] and is appended to it. Logits of padding rows are zero;
// with last_only each row's last real token's (zeros for an empty row).
struct ForwardArgs {
  const int64_t* tokens = nullptr;
  int64_t B = 0, T = 0;
  const int64_t* lengths = nullptr;  // [B]; nullptr: every row has T tokens
  float* logits = nullptr;
  bool last_only = false;
  Cache* cache = nullptr;    // made by this model's new_cache, or nullptr
  HookSet* hooks = nullptr;  // read or edit activations (nn/hooks.h); nullptr: none

  // Vision-language inputs (all optional; python/gemmacpp/vision/image_inputs.py builds them).
  // embeds [B, T, d] float32: row (b, t) is used instead of token (b, t)'s (scaled) embedding
  // where embed_mask[b * T + t] != 0 (image soft tokens; their ids are not looked up).
  const float* embeds = nullptr;
  const uint8_t* embed_mask = nullptr;
  // Bidirectional spans, n_spans rows of (b, start, end): tokens [start, end) of row b (indices
  // into this call's tokens) also see the span's later tokens. Per row sorted and disjoint. On
  // sliding-window layers a span stays inside the window when span_in_window (Gemma 3's image
  // blocks), else its tokens see all of it (PaliGemma 2's prefix).
  const int64_t* spans = nullptr;
  int64_t n_spans = 0;
  bool span_in_window = true;
  int64_t position_offset = 0;  // added to RoPE positions (PaliGemma counts from 1)
};

}  // namespace gemmacpp::nn
