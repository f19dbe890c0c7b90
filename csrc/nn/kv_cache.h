// Keys and values of the positions a Gemma model has already seen, per layer and per sequence, in
// float32. Each sequence of the batch has its own length, so prompts of different lengths share one
// cache. Global layers keep every position; sliding-window layers keep only their last `window`
// positions in a ring (position p in row p % window), so their memory stops growing past the window.
#pragma once

#include <cstdint>
#include <vector>

#include "csrc/nn/config.h"
#include "csrc/nn/sequence_lengths.h"

namespace gemmacpp {

struct LayerKV {
  bool ring = false;                     // sliding-window layer
  int64_t capacity = 0;                  // max rows: window for ring layers, max_len for global ones
  std::vector<std::vector<float>> k, v;  // per sequence: [rows][Hkv * D]; rows grow up to capacity
};

class KVCache : public SequenceLengths {
 public:
  KVCache(const ModelConfig& c, int64_t batch, int64_t max_len);

  int64_t row_elems() const { return kv_heads_ * head_dim_; }  // floats of one position's K
  std::vector<int64_t> layer_nbytes() const;
  int64_t nbytes() const;
  void reset();
  // A new cache holding copies of the given sequences, in that order (repeats allowed): forks one
  // prompt's cache into several continuations, or drops finished sequences.
  KVCache select(const std::vector<int64_t>& sequences) const;

  std::vector<LayerKV>& layers() { return layers_; }

 private:
  // Same layers and sizes as shape, for these sequences, holding no keys yet.
  KVCache(const KVCache& shape, SequenceLengths sequences);

  int64_t kv_heads_, head_dim_;
  std::vector<LayerKV> layers_;
};

}  // namespace gemmacpp
