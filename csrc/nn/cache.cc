#include "csrc/nn/cache.h"

#include <algorithm>
#include <utility>

#include "csrc/core/error.h"

namespace gemmacpp::nn {
namespace {

// A slot for `batch` sequences; with allocate, fixed rings and recurrent states get their zeros.
Slot make_slot(const SlotSpec& spec, int64_t batch, bool allocate) {
  if (const auto* kv = std::get_if<KvSpec>(&spec)) {
    KvSlot s{*kv, {}, {}};
    const size_t per = allocate && kv->fixed ? size_t(kv->capacity * kv->row_elems) : 0;
    s.k.assign(size_t(batch), std::vector<float>(per, 0.0f));
    s.v.assign(size_t(batch), std::vector<float>(per, 0.0f));
    return s;
  }
  if (const auto* r = std::get_if<RecurrentSpec>(&spec)) {
    RecurrentSlot s{*r, {}, {}};
    if (allocate) {
      s.h.assign(size_t(batch * r->width), 0.0f);
      s.conv.assign(size_t(batch * r->conv_rows * r->width), 0.0f);
    }
    return s;
  }
  return std::monostate{};
}

}  // namespace

Cache::Cache(const std::vector<SlotSpec>& layers, int64_t batch, int64_t max_len)
    : specs_(layers), max_len_(max_len) {
  GC_CHECK(batch >= 1, ValueError, "new_cache: batch must be >= 1, got ", batch);
  GC_CHECK(max_len >= 1, ValueError, "new_cache: max_len must be >= 1, got ", max_len);
  lengths_.assign(size_t(batch), 0);
  for (const SlotSpec& s : layers) slots_.push_back(make_slot(s, batch, /*allocate=*/true));
}

Cache::Cache(const std::vector<SlotSpec>& layers, std::vector<int64_t> lengths, int64_t max_len, bool allocate)
    : specs_(layers), lengths_(std::move(lengths)), max_len_(max_len) {
  for (const SlotSpec& s : layers) slots_.push_back(make_slot(s, batch(), allocate));
}

bool Cache::bounded() const {
  return std::any_of(specs_.begin(), specs_.end(), [](const SlotSpec& s) {
    const auto* kv = std::get_if<KvSpec>(&s);
    return kv && !kv->ring;
  });
}

void Cache::check_layout(const std::vector<SlotSpec>& layers) const {
  GC_CHECK(layers.size() == specs_.size(), ValueError, "forward: the cache was made for a model with ",
           specs_.size(), " layers");
  GC_CHECK(layers == specs_, ValueError,
           "forward: the cache was made for a model with other layers (use this model's new_cache)");
}

std::vector<int64_t> Cache::layer_nbytes() const {
  std::vector<int64_t> out;
  for (const Slot& slot : slots_) {
    size_t n = 0;
    if (const auto* kv = std::get_if<KvSlot>(&slot)) {
      for (size_t b = 0; b < kv->k.size(); ++b) n += kv->k[b].size() + kv->v[b].size();
    } else if (const auto* r = std::get_if<RecurrentSlot>(&slot)) {
      n = r->h.size() + r->conv.size();
    }
    out.push_back(int64_t(n * sizeof(float)));
  }
  return out;
}

int64_t Cache::nbytes() const {
  int64_t n = 0;
  for (int64_t x : layer_nbytes()) n += x;
  return n;
}

void Cache::reset() {
  std::fill(lengths_.begin(), lengths_.end(), 0);
  for (Slot& slot : slots_) {
    if (auto* kv = std::get_if<KvSlot>(&slot)) {
      for (auto* seqs : {&kv->k, &kv->v}) {
        for (std::vector<float>& s : *seqs) {
          if (kv->spec.fixed) {
            std::fill(s.begin(), s.end(), 0.0f);
          } else {
            std::vector<float>().swap(s);
          }
        }
      }
    } else if (auto* r = std::get_if<RecurrentSlot>(&slot)) {
      std::fill(r->h.begin(), r->h.end(), 0.0f);
      std::fill(r->conv.begin(), r->conv.end(), 0.0f);
    }
  }
}

Cache Cache::select(const std::vector<int64_t>& sequences) const {
  GC_CHECK(!sequences.empty(), ValueError, "cache.select: no sequences given");
  std::vector<int64_t> lengths;
  for (int64_t s : sequences) {
    GC_CHECK(s >= 0 && s < batch(), ValueError, "cache.select: sequence ", s, " is out of range [0, ",
             batch(), ")");
    lengths.push_back(lengths_[size_t(s)]);
  }
  Cache out(specs_, std::move(lengths), max_len_, /*allocate=*/false);
  // Recurrent states are [B][per-sequence floats]: each chosen sequence's block, in order.
  const size_t B = size_t(batch());
  auto pick = [&](const std::vector<float>& src, std::vector<float>& dst) {
    const size_t per = src.size() / B;
    dst.resize(per * sequences.size());
    for (size_t i = 0; i < sequences.size(); ++i) {
      std::copy_n(src.begin() + std::ptrdiff_t(size_t(sequences[i]) * per), per,
                  dst.begin() + std::ptrdiff_t(i * per));
    }
  };
  for (size_t li = 0; li < slots_.size(); ++li) {
    if (const auto* kv = std::get_if<KvSlot>(&slots_[li])) {
      KvSlot& dst = std::get<KvSlot>(out.slots_[li]);
      for (size_t i = 0; i < sequences.size(); ++i) {
        dst.k[i] = kv->k[size_t(sequences[i])];
        dst.v[i] = kv->v[size_t(sequences[i])];
      }
    } else if (const auto* r = std::get_if<RecurrentSlot>(&slots_[li])) {
      RecurrentSlot& dst = std::get<RecurrentSlot>(out.slots_[li]);
      pick(r->h, dst.h);
      pick(r->conv, dst.conv);
    }
  }
  return out;
}

}  // namespace gemmacpp::nn
