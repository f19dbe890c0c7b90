// Self-attention as every family uses it: q/k/v projections (biases optional), per-head RMSNorm of
// q and k (Gemma 3) and of v (weightless: EmbeddingGemma 2), RoPE over the first rotary_dim dimensions of each head, one call of the
// attention op over all sequences of the batch (each sees only its own keys, and with a cache its
// past ones), the output projection. Hook sites attn.hook_q, hook_k, hook_v (after the QK-norm,
// before RoPE), hook_scores and hook_pattern ([B, H, T, Tk]: asking for either moves this layer to
// the plain path that writes them out, and edits of them drive the layer's output), hook_z.
#pragma once

#include <cstdint>

#include "csrc/nn/cache.h"
#include "csrc/nn/config.h"
#include "csrc/nn/forward.h"
#include "csrc/nn/linear.h"
#include "csrc/nn/norm.h"
#include "csrc/nn/scope.h"

namespace gemmacpp::nn {

struct AttentionSpec {
  int64_t d = 0, heads = 0, kv_heads = 0, head_dim = 0;
  bool qkv_bias = false;       // q, k and v projections have biases
  bool o_bias = false;
  bool qk_norm = false;        // RMSNorm of q and k per head
  bool v_norm = false;         // weightless RMSNorm of v per head
  double norm_eps = 1e-6;
  bool norm_unit_offset = true;
  bool causal = true;          // false: every query sees every key of its sequence
  int64_t window = 0;          // causal sliding window: keys with q - k < window; 0: none
  int64_t radius = 0;          // bidirectional sliding window: keys with |q - k| <= radius; 0: none
  float softcap = 0;           // 0: none
  float scale = 1;
  bool rope = true;
  double rope_base = 10000, rope_scale = 1;
  int64_t rotary_dim = 0;      // 0: head_dim
  int64_t rotated_pairs = -1;  // of the rotary_dim / 2 pairs, how many turn (Gemma 4's global layers); -1: all
  // The cache keeps exactly `window` rows from the start (RecurrentGemma), instead of a ring only
  // when the window is shorter than the cache's max_len.
  bool fixed_ring = false;
};

// A layer's attention as its config describes it: sizes, QK-norm, q/k/v biases (attention_bias),
// causal or (an encoder) bidirectional, the layer's window (local layers) and RoPE, the softcap and
// the scale query_pre_attn_scalar^-1/2. Families add what their config does not say (an o_proj
// bias, a fixed-size ring).
AttentionSpec attention_spec(const ModelConfig& c, const LayerConfig& layer);

class Attention {
 public:
  // s: the block's scope ("blocks.3.attn."); layer: its cache slot.
  Attention(const Scope& s, const AttentionSpec& spec, int64_t layer);

  SlotSpec cache_slot(int64_t max_len) const;
  // h [M, d] -> out [M, d] for the forward's packed rows.
  void operator()(const Forward& f, const float* h, float* out) const;

 private:
  AttentionSpec spec_;
  int64_t layer_;
  Linear q_, k_, v_, o_;
  RMSNorm q_norm_, k_norm_, v_norm_;
  int q_site_, k_site_, v_site_, scores_site_, pattern_site_, z_site_;
};

}  // namespace gemmacpp::nn
