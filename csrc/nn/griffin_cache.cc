#include "csrc/nn/griffin_cache.h"

#include <algorithm>
#include <utility>

namespace gemmacpp {

GriffinCache::GriffinCache(const ModelConfig& c, int64_t batch, int64_t max_len)
    : SequenceLengths(batch, max_len) {
  for (const LayerConfig& l : c.layers) {
    GriffinLayerState s;
    s.recurrent = l.recurrent;
    if (l.recurrent) {
      s.h.assign(size_t(batch * c.lru_width), 0.0f);
      s.conv.assign(size_t(batch * (c.conv1d_width - 1) * c.lru_width), 0.0f);
    } else {
      s.window = l.window;
      s.k.assign(size_t(batch * l.window * c.n_kv_heads * c.head_dim), 0.0f);
      s.v.assign(s.k.size(), 0.0f);
    }
    layers_.push_back(std::move(s));
  }
}

GriffinCache::GriffinCache(const GriffinCache& shape, SequenceLengths sequences)
    : SequenceLengths(std::move(sequences)) {
  for (const GriffinLayerState& s : shape.layers_) {
    GriffinLayerState e;
    e.recurrent = s.recurrent;
    e.window = s.window;
    layers_.push_back(std::move(e));
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
  reset_lengths();
  for (GriffinLayerState& s : layers_) {
    for (auto* v : {&s.h, &s.conv, &s.k, &s.v}) std::fill(v->begin(), v->end(), 0.0f);
  }
}

GriffinCache GriffinCache::select(const std::vector<int64_t>& sequences) const {
  GriffinCache out(*this, selected(sequences));
  // Every state is [B][per-sequence floats]: copy each chosen sequence's block in order.
  const size_t B = size_t(batch());
  auto pick = [&](const std::vector<float>& src, std::vector<float>& dst) {
    const size_t per = src.size() / B;
    dst.resize(per * sequences.size());
    for (size_t i = 0; i < sequences.size(); ++i) {
      std::copy_n(src.begin() + std::ptrdiff_t(size_t(sequences[i]) * per), per,
                  dst.begin() + std::ptrdiff_t(i * per));
    }
  };
  for (size_t li = 0; li < layers_.size(); ++li) {
    const GriffinLayerState& src = layers_[li];
    GriffinLayerState& dst = out.layers_[li];
    pick(src.h, dst.h);
    pick(src.conv, dst.conv);
    pick(src.k, dst.k);
    pick(src.v, dst.v);
  }
  return out;
}

}  // namespace gemmacpp
