// What a RecurrentGemma (Griffin) model carries from one call to the next, in float32: per
// recurrent block the RG-LRU state and the last conv1d_width - 1 conv inputs, per attention block
// a ring of the last `window` keys and values (position p in row p % window). All of it is
// allocated up front, so its size never depends on how many tokens have been seen.
#pragma once

#include <cstdint>
#include <vector>

#include "csrc/models/config.h"

namespace gemmacpp {

struct GriffinLayerState {
  bool recurrent = false;
  std::vector<float> h;     // [B, lru_width]: RG-LRU state
  std::vector<float> conv;  // [B, conv1d_width - 1, lru_width]: the conv's last inputs
  int64_t window = 0;       // ring rows of an attention block
  std::vector<float> k, v;  // [window][B][kv_heads * head_dim]
};

class GriffinCache {
 public:
  // max_len is kept for the API shared with the Gemma KV cache; it does not bound the length.
  GriffinCache(const ModelConfig& c, int64_t batch, int64_t max_len);

  int64_t batch() const { return batch_; }
  int64_t max_len() const { return max_len_; }
  int64_t length() const { return length_; }  // positions seen so far
  std::vector<int64_t> layer_nbytes() const;
  int64_t nbytes() const;
  void reset();  // back to an empty sequence (zero states)

  std::vector<GriffinLayerState>& layers() { return layers_; }
  void advance(int64_t n) { length_ += n; }

 private:
  int64_t batch_, max_len_, length_ = 0;
  std::vector<GriffinLayerState> layers_;
};

}  // namespace gemmacpp
