// A [B, T] token batch with per-row lengths, packed into its real tokens: a forward's activation
// rows are only the tokens that exist, one sequence after another, so padding costs no compute.
// Sequence b's count[b] tokens are packed rows [offset[b], offset[b] + count[b]) at positions
// start[b] + 0, 1, ... (start: what the cache already holds of it); offset is flash-attention's
// cu_seqlens. Every forward shares through it the checks of a batch, its packed ids and
// positions, the hooks' [B, T, ...] view of packed activations, and the spreading of per-token
// outputs back to [B, T] (or to one row per sequence for last_only).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "csrc/nn/hooks.h"

namespace gemmacpp::nn {

// What the packing reads of a model's cache (nn/cache.h); lengths nullptr: no cache.
struct CacheExtent {
  const std::vector<int64_t>* lengths = nullptr;  // positions each sequence already holds
  int64_t layers = 0;                             // layers of the model it was made for
  int64_t max_len = -1;                           // bound on a sequence's positions; -1: none
};

class PackedBatch {
 public:
  // Checks (ValueError, messages naming the forward's argument): B, T >= 1, every lengths[b] in
  // [0, T] (lengths nullptr: all T), and a cache of B sequences for a model of n_layers layers with
  // room for this call's tokens.
  PackedBatch(int64_t B, int64_t T, const int64_t* lengths, int64_t n_layers, const CacheExtent& cache);

  int64_t B = 0, T = 0, M = 0;  // M: packed rows, the real tokens of all sequences
  std::vector<int64_t> count, offset, start;  // offset has B + 1 entries; offset[B] = M
  bool uniform = false;  // every sequence has the same count: the packed rows are [B, count, ...]

  // The packed token ids, each checked against [0, vocab). Where replaced[b * T + t] != 0 the
  // token's embedding is replaced by the caller (image soft tokens), so its id is not read: 0.
  std::vector<int64_t> ids(const int64_t* tokens, int64_t vocab, const uint8_t* replaced = nullptr) const;
  // The packed rows' positions, plus `shift` (PaliGemma counts from 1).
  std::vector<int64_t> positions(int64_t shift = 0) const;

  // The rows the head runs on, as a batch: all of them, or with last_only each non-empty
  // sequence's last, moved to the front of x [M, width] (a [B, 1] batch of 0 or 1 rows each).
  PackedBatch head_rows(bool last_only, float* x, int64_t width) const;
  // Packed rows of `width` floats (in place, at the front of a [B, T, width] buffer) moved out to
  // [B, T, width], padding zeroed.
  void spread(float* rows, int64_t width) const;
  void zero_padding(float* rows, int64_t width) const;  // [B, T, width]: rows t >= count[b] = 0

 private:
  PackedBatch() = default;
};

// Offers a forward's activations to its hooks as [B, T, inner...]; with no HookSet (or none at a
// point) it costs a branch.
class PackedHooks {
 public:
  PackedHooks(HookSet* hooks, const PackedBatch& batch) : hooks_(hooks), batch_(batch) {}
  HookSet* hooks() const { return hooks_; }
  // Blocks hold -1 for the sites they lack (no q/k norm, shared keys and values, ...), and a
  // HookSet indexes its table by site: so -1 is never wanted here, whoever asks.
  bool wants(int site) const { return site >= 0 && hooks_ && hooks_->wants(site); }
  // Packed rows of shape inner each, offered as [B, T, inner...]: in place when every sequence
  // fills all T rows, else through a zero-padded copy whose real rows are copied back (edits in
  // the padding are dropped).
  void operator()(int site, float* rows, std::initializer_list<int64_t> inner) const;
  // Rows already spread to [B, T, width] (the logits); the padding is zeroed again after the hook.
  void spread(int site, float* rows, int64_t width) const;
  // One row of width floats per sequence (a pooled sentence vector), offered as [B, width].
  void per_sequence(int site, float* rows, int64_t width) const {
    if (wants(site)) hooks_->call(site, rows, {batch_.B, width});
  }

 private:
  HookSet* hooks_;
  const PackedBatch& batch_;
};

}  // namespace gemmacpp::nn
