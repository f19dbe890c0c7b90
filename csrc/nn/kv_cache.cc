#include "csrc/nn/kv_cache.h"

#include <algorithm>
#include <utility>

namespace gemmacpp {

KVCache::KVCache(const ModelConfig& c, int64_t batch, int64_t max_len)
    : SequenceLengths(batch, max_len), kv_heads_(c.n_kv_heads), head_dim_(c.head_dim) {
  for (const LayerConfig& l : c.layers) {
    LayerKV kv;
    kv.ring = l.local && l.window > 0 && l.window < max_len;
    kv.capacity = kv.ring ? l.window : max_len;
    kv.k.resize(size_t(batch));
    kv.v.resize(size_t(batch));
    layers_.push_back(std::move(kv));
  }
}

KVCache::KVCache(const KVCache& shape, SequenceLengths sequences)
    : SequenceLengths(std::move(sequences)), kv_heads_(shape.kv_heads_), head_dim_(shape.head_dim_) {
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
  reset_lengths();
  for (LayerKV& l : layers_) {
    for (auto& s : l.k) std::vector<float>().swap(s);
    for (auto& s : l.v) std::vector<float>().swap(s);
  }
}

KVCache KVCache::select(const std::vector<int64_t>& sequences) const {
  KVCache out(*this, selected(sequences));
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
