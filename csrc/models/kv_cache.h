// Keys and values of the positions a Gemma model has already seen, per layer, in float32.
// Global layers keep every position; sliding-window layers keep only their last `window` positions
// in a ring (position p in row p % window), so their memory stops growing past the window.
#pragma once

#include <cstdint>
#include <vector>

#include "csrc/models/config.h"

namespace gemmacpp {

struct LayerKV {
  bool ring = false;         // sliding-window layer
  int64_t capacity = 0;      // max rows: window for ring layers, max_len for global ones
  std::vector<float> k, v;   // [rows][B][Hkv][D]; rows grow up to capacity
};

class KVCache {
 public:
  KVCache(const ModelConfig& c, int64_t batch, int64_t max_len);

  int64_t batch() const { return batch_; }
  int64_t max_len() const { return max_len_; }
  int64_t length() const { return length_; }  // positions seen so far
  int64_t row_elems() const { return batch_ * kv_heads_ * head_dim_; }
  std::vector<int64_t> layer_nbytes() const;
  void reset();

  std::vector<LayerKV>& layers() { return layers_; }
  void advance(int64_t n) { length_ += n; }

 private:
  int64_t batch_, max_len_, kv_heads_, head_dim_, length_ = 0;
  std::vector<LayerKV> layers_;
};

}  // namespace gemmacpp
