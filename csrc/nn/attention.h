// Self-attention as every family uses it: q/k/v projections (biases optional), per-head RMSNorm of
// q and k (Gemma 3) and of v (weightless: EmbeddingGemma 2, Gemma 4), RoPE over the first
// rotary_dim dimensions of each head (or its first pairs only), one call of the attention op over
// all sequences of the batch (each sees only its own keys, and with a cache its past ones), the
// output projection. Hook sites attn.hook_q, hook_k (the projections), hook_q_normed, hook_k_normed
// (after the QK-norm, where there is one; TransformerLens' names), hook_v (after the v norm), all
// before RoPE,
// hook_scores and hook_pattern ([B, H, T, Tk]: asking for either moves this layer to the plain
// path that writes them out, and edits of them drive the layer's output), hook_z.
//
// Gemma 4's variants: keys that double as values (k_eq_v: no v projection), and KV sharing: a
// layer that attends over the keys and values an earlier layer made in the same forward (its
// kv_source) has no k/v projections, no hook_k/hook_v and no cache slot; the source publishes
// them in the forward's SharedKv.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "csrc/core/attention_args.h"

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
  bool k_eq_v = false;         // v is the k projection's output (before the k norm and RoPE)
  int64_t kv_source = -1;      // the layer whose keys and values this one reads; -1: its own
  bool publishes_kv = false;   // a later layer reads this one's keys and values
  // The cache keeps exactly `window` rows from the start (RecurrentGemma), instead of a ring only
  // when the window is shorter than the cache's max_len.
  bool fixed_ring = false;
};

// Layer i's attention as its config describes it: sizes, QK-norm, q/k/v biases (attention_bias),
// causal or (an encoder) bidirectional, the layer's window (local layers) and RoPE, the softcap and
// the scale query_pre_attn_scalar^-1/2, keys as values and KV sharing. Families add what their
// config does not say (an o_proj bias, a fixed-size ring).
AttentionSpec attention_spec(const ModelConfig& c, int64_t i);

// The keys and values of one attention layer in one forward, per sequence as the attention op
// reads them (the AttentionArgs' key side, with their masks), and the buffers that hold them. A
// layer keeps its own on the stack; one whose keys later layers share keeps them in the forward's
// SharedKv, where they live until the forward ends.
struct AttentionKeys {
  std::vector<AttentionArgs> seqs;  // per sequence; q and out are the reader's to set
  std::vector<std::vector<float>> k_win, v_win;       // ring caches' keys in position order
  std::vector<std::vector<int64_t>> key_lo, key_hi;   // explicit per-query key ranges
  std::optional<Buffer> k_rows, v_rows;               // this forward's new rows, when shared
};
struct SharedKv {
  std::vector<AttentionKeys> layers;  // indexed by layer; filled by the layers that publish
};

class Attention {
 public:
  // s: the block's scope ("blocks.3.attn."); layer: its cache slot.
  Attention(const Scope& s, const AttentionSpec& spec, int64_t layer);

  SlotSpec cache_slot(int64_t max_len) const;
  // h [M, d] -> out [M, d] for the forward's packed rows.
  void operator()(const Forward& f, const float* h, float* out) const;

 private:
  // This forward's keys and values from h (projections, norms, RoPE, the cache) into keys; their
  // rows from ws unless later layers read them.
  void make_keys(const Forward& f, const float* h, Workspace::Frame& ws, AttentionKeys& keys) const;
  void rotate(const Forward& f, float* x, int64_t heads) const;  // RoPE of x [M, heads, head_dim] in place

  AttentionSpec spec_;
  int64_t layer_;
  Linear q_, k_, v_, o_;
  RMSNorm q_norm_, k_norm_, v_norm_;
  int q_site_, q_normed_site_, k_site_, k_normed_site_, v_site_, scores_site_, pattern_site_, z_site_;
};

}  // namespace gemmacpp::nn
