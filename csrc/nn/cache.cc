#include "csrc/nn/cache.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <utility>

#include "csrc/core/error.h"
#include "csrc/core/tensor.h"

namespace gemmacpp::nn {
namespace {

// A slot for `batch` sequences; with allocate, fixed rings and recurrent states get their zeros.
Slot make_slot(const SlotSpec& spec, int64_t batch, bool allocate) {
  if (const auto* kv = std::get_if<KvSpec>(&spec)) {
    KvSlot s{*kv, {}, {}, {}};
    const size_t per = allocate && kv->fixed ? size_t(kv->capacity * kv->row_elems) : 0;
    s.k.assign(size_t(batch), std::vector<float>(per, 0.0f));
    s.v.assign(size_t(batch), std::vector<float>(per, 0.0f));
    s.first.assign(size_t(batch), 0);
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

// Bytes a new cache of `batch` sequences takes before any forward: the per-sequence bookkeeping
// (a length, and per attention layer two vector headers and a window's first position), fixed
// rings and recurrent states.
// Full slots and growing rings start empty. ValueError if the count itself overflows.
int64_t upfront_bytes(const std::vector<SlotSpec>& layers, int64_t batch) {
  const char* what = "new_cache";
  int64_t per_seq = int64_t(sizeof(int64_t));
  for (const SlotSpec& spec : layers) {
    int64_t floats = 0;
    if (const auto* kv = std::get_if<KvSpec>(&spec)) {
      per_seq += 2 * int64_t(sizeof(std::vector<float>)) + int64_t(sizeof(int64_t));
      if (kv->fixed) floats = checked_mul(2, checked_mul(kv->capacity, kv->row_elems, what), what);
    } else if (const auto* r = std::get_if<RecurrentSpec>(&spec)) {
      floats = checked_mul(r->width, 1 + r->conv_rows, what);
    }
    GC_CHECK(!__builtin_add_overflow(per_seq, checked_mul(floats, int64_t(sizeof(float)), what),
                                     &per_seq),
             ValueError, what, ": the cache's size overflows a 64-bit count");
  }
  return checked_mul(per_seq, batch, what);
}

// What this process could still get: the system's available memory (MemAvailable: free pages
// and reclaimable cache), else its physical memory, and no more than its address-space limit.
int64_t available_memory_bytes() {
  int64_t have = INT64_MAX;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  while (meminfo >> key >> kib) {
    if (key == "MemAvailable:") {
      have = kib * 1024;
      break;
    }
    meminfo.ignore(256, '\n');
  }
  if (have == INT64_MAX) {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) have = int64_t(pages) * int64_t(page);
  }
  struct rlimit as;
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY)
    have = std::min(have, int64_t(std::min<rlim_t>(as.rlim_cur, rlim_t(INT64_MAX))));
  return have;
}

}  // namespace

Cache::Cache(const std::vector<SlotSpec>& layers, int64_t batch, int64_t max_len)
    : specs_(layers), max_len_(max_len) {
  GC_CHECK(batch >= 1, ValueError, "new_cache: batch must be >= 1, got ", batch);
  GC_CHECK(max_len >= 1, ValueError, "new_cache: max_len must be >= 1, got ", max_len);
  // Refused before touching a page: growing until the kernel's OOM killer ends the process takes
  // the Python session with it.
  const int64_t need = upfront_bytes(layers, batch);
  if (need > (int64_t(1) << 30)) {  // small caches need no look at the system
    const int64_t have = available_memory_bytes();
    GC_CHECK(need <= have, MemoryError, "new_cache: a cache for ", batch, " sequences needs ",
             double(need) / (1 << 30), " GiB up front, more than the ", double(have) / (1 << 30),
             " GiB of memory available");
  }
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

void Cache::check_idle(const char* what) const {
  GC_CHECK(!busy_->load(), ValueError, what, ": the cache is in use by a forward (another thread, or "
           "a hook calling forward with the same cache); use one cache per concurrent forward");
}

Cache::Use::Use(Cache& c, const char* what) : busy_(*c.busy_) {
  bool idle = false;
  GC_CHECK(busy_.compare_exchange_strong(idle, true), ValueError, what,
           ": the cache is in use by another forward (another thread, or a hook calling forward "
           "with the same cache); use one cache per concurrent forward");
}

Cache::Use::~Use() { busy_.store(false); }

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
  check_idle("cache.reset");
  std::fill(lengths_.begin(), lengths_.end(), 0);
  for (Slot& slot : slots_) {
    if (auto* kv = std::get_if<KvSlot>(&slot)) {
      std::fill(kv->first.begin(), kv->first.end(), 0);
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
  check_idle("cache.select");
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
        dst.first[i] = kv->first[size_t(sequences[i])];
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
