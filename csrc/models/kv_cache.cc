#include "csrc/models/kv_cache.h"

#include <algorithm>

#include "csrc/core/error.h"

namespace gemmacpp {

KVCache::KVCache(const ModelConfig& c, int64_t batch, int64_t max_len)
    : batch_(batch), max_len_(max_len), kv_heads_(c.n_kv_heads), head_dim_(c.head_dim) {
  GC_CHECK(batch >= 1, ValueError, "new_cache: batch must be >= 1, got ", batch);
  GC_CHECK(max_len >= 1, ValueError, "new_cache: max_len must be >= 1, got ", max_len);
  for (const LayerConfig& l : c.layers) {
    LayerKV kv;
    kv.ring = l.local && l.window > 0 && l.window < max_len;
    kv.capacity = kv.ring ? l.window : max_len;
    layers_.push_back(std::move(kv));
  }
}

std::vector<int64_t> KVCache::layer_nbytes() const {
  std::vector<int64_t> out;
  for (const LayerKV& l : layers_) out.push_back(int64_t((l.k.size() + l.v.size()) * sizeof(float)));
  return out;
}

void KVCache::reset() {
  length_ = 0;
  for (LayerKV& l : layers_) {
    l.k.clear();
    l.v.clear();
  }
}

}  // namespace gemmacpp
