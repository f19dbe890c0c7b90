#include "csrc/models/kv_cache.h"

#include <algorithm>

#include "csrc/core/error.h"

namespace gemmacpp {

KVCache::KVCache(const ModelConfig& c, int64_t batch, int64_t max_len)
    : max_len_(max_len), kv_heads_(c.n_kv_heads), head_dim_(c.head_dim) {
  GC_CHECK(batch >= 1, ValueError, "new_cache: batch must be >= 1, got ", batch);
  GC_CHECK(max_len >= 1, ValueError, "new_cache: max_len must be >= 1, got ", max_len);
  lengths_.assign(size_t(batch), 0);
  for (const LayerConfig& l : c.layers) {
    LayerKV kv;
    kv.ring = l.local && l.window > 0 && l.window < max_len;
    kv.capacity = kv.ring ? l.window : max_len;
    kv.k.resize(size_t(batch));
    kv.v.resize(size_t(batch));
    layers_.push_back(std::move(kv));
  }
}

KVCache::KVCache(const KVCache& shape, Empty)
    : max_len_(shape.max_len_), kv_heads_(shape.kv_heads_), head_dim_(shape.head_dim_) {
  for (const LayerKV& l : shape.layers_) {
    LayerKV kv;
    kv.ring = l.ring;
    kv.capacity = l.capacity;
    layers_.push_back(std::move(kv));
  }
}

std::vector<int64_t> KVCache::layer_nbytes() const {
  std::vector<int64_t> out;
  for (const LayerKV& l : layers_) {
    size_t n = 0;
    for (size_t b = 0; b < l.k.size(); ++b) n += l.k[b].size() + l.v[b].size();
    out.push_back(int64_t(n * sizeof(float)));
  }
  return out;
}

int64_t KVCache::nbytes() const {
  int64_t n = 0;
  for (int64_t x : layer_nbytes()) n += x;
  return n;
}

void KVCache::reset() {
  std::fill(lengths_.begin(), lengths_.end(), 0);
  for (LayerKV& l : layers_) {
    for (auto& s : l.k) std::vector<float>().swap(s);
    for (auto& s : l.v) std::vector<float>().swap(s);
  }
}

KVCache KVCache::select(const std::vector<int64_t>& sequences) const {
  GC_CHECK(!sequences.empty(), ValueError, "cache.select: no sequences given");
  for (int64_t s : sequences) {
    GC_CHECK(s >= 0 && s < batch(), ValueError, "cache.select: sequence ", s,
             " is out of range [0, ", batch(), ")");
  }
  KVCache out(*this, Empty{});
  for (int64_t s : sequences) out.lengths_.push_back(lengths_[size_t(s)]);
  for (size_t li = 0; li < layers_.size(); ++li) {
    LayerKV& dst = out.layers_[li];
    const LayerKV& src = layers_[li];
    for (int64_t s : sequences) {
      dst.k.push_back(src.k[size_t(s)]);
      dst.v.push_back(src.v[size_t(s)]);
    }
  }
  return out;
}

}  // namespace gemmacpp
