// What a RecurrentGemma (Griffin) model carries from one call to the next, in float32, per
// sequence: per recurrent block the RG-LRU state and the last conv1d_width - 1 conv inputs, per
// attention block a ring of the last `window` keys and values (position p in row p % window).
// All of it is allocated up front, so its size never depends on how many tokens have been seen.
// Each sequence has its own length, so prompts of different lengths share one cache.
#pragma once

#include <cstdint>
#include <vector>

#include "csrc/nn/config.h"
#include "csrc/nn/sequence_lengths.h"

namespace gemmacpp {

struct GriffinLayerState {
  bool recurrent = false;
  std::vector<float> h;     // [B, lru_width]: RG-LRU state
  std::vector<float> conv;  // [B, conv1d_width - 1, lru_width]: the conv's last inputs
  int64_t window = 0;       // ring rows of an attention block
  std::vector<float> k, v;  // [B][window][kv_heads * head_dim]
};

class GriffinCache : public SequenceLengths {
 public:
  // max_len is kept for the API shared with the Gemma KV cache; it does not bound the length.
  GriffinCache(const ModelConfig& c, int64_t batch, int64_t max_len);

  std::vector<int64_t> layer_nbytes() const;
  int64_t nbytes() const;
  void reset();  // back to empty sequences (zero states)
  // A new cache holding copies of the given sequences, in that order (repeats allowed): forks one
  // prompt's state into several continuations, or drops finished sequences.
  GriffinCache select(const std::vector<int64_t>& sequences) const;

  std::vector<GriffinLayerState>& layers() { return layers_; }

 private:
  // Same layers as shape, for these sequences, with no states allocated yet.
  GriffinCache(const GriffinCache& shape, SequenceLengths sequences);

  std::vector<GriffinLayerState> layers_;
};

}  // namespace gemmacpp
