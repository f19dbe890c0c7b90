#include "csrc/models/griffin_cache.h"

#include <algorithm>

#include "csrc/core/error.h"

namespace gemmacpp {

GriffinCache::GriffinCache(const ModelConfig& c, int64_t batch, int64_t max_len)
    : batch_(batch), max_len_(max_len) {
  GC_CHECK(batch >= 1, ValueError, "new_cache: batch must be >= 1, got ", batch);
  GC_CHECK(max_len >= 1, ValueError, "new_cache: max_len must be >= 1, got ", max_len);
  for (const LayerConfig& l : c.layers) {
    GriffinLayerState s;
    s.recurrent = l.recurrent;
    if (l.recurrent) {
      s.h.assign(size_t(batch * c.lru_width), 0.0f);
      s.conv.assign(size_t(batch * (c.conv1d_width - 1) * c.lru_width), 0.0f);
    } else {
      s.window = l.window;
      s.k.assign(size_t(l.window * batch * c.n_kv_heads * c.head_dim), 0.0f);
      s.v.assign(s.k.size(), 0.0f);
    }
    layers_.push_back(std::move(s));
  }
}

std::vector<int64_t> GriffinCache::layer_nbytes() const {
  std::vector<int64_t> out;
  for (const GriffinLayerState& s : layers_) {
    out.push_back(int64_t((s.h.size() + s.conv.size() + s.k.size() + s.v.size()) * sizeof(float)));
  }
  return out;
}

int64_t GriffinCache::nbytes() const {
  int64_t n = 0;
  for (int64_t b : layer_nbytes()) n += b;
  return n;
}

void GriffinCache::reset() {
  length_ = 0;
  for (GriffinLayerState& s : layers_) {
    for (auto* v : {&s.h, &s.conv, &s.k, &s.v}) std::fill(v->begin(), v->end(), 0.0f);
  }
}

}  // namespace gemmacpp
