#include "csrc/core/host_blocks.h"

#include <sys/mman.h>

#include <cstdlib>
#include <list>
#include <mutex>
#include <utility>

namespace gemmacpp::host_blocks {
namespace {

size_t rounded(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

struct Cache {
  std::mutex mu;
  std::list<std::pair<size_t, void*>> blocks;  // (rounded size, block), newest first
  size_t bytes = 0;
  size_t budget = 0;

  Cache() {
    const char* env = std::getenv("GEMMACPP_HOST_CACHE_MB");
    budget = (env ? size_t(std::strtoull(env, nullptr, 10)) : 256) << 20;
  }
  // Frees the oldest blocks until the cache fits its budget. Called with mu held.
  void trim() {
    while (bytes > budget && !blocks.empty()) {
      bytes -= blocks.back().first;
      std::free(blocks.back().second);
      blocks.pop_back();
    }
  }
};

// Never destroyed: tensors owned by Python objects may be released after static destructors run.
Cache& cache() {
  static Cache* c = new Cache();
  return *c;
}

}  // namespace

void* acquire(size_t bytes) {
  const size_t n = rounded(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    for (auto it = c.blocks.begin(); it != c.blocks.end(); ++it) {
      if (it->first == n) {
        void* p = it->second;
        c.bytes -= n;
        c.blocks.erase(it);
        return p;
      }
    }
  }
  void* p = std::aligned_alloc(kAlign, n);
#ifdef MADV_HUGEPAGE  // Linux only (macOS has no transparent huge pages)
  if (p != nullptr) ::madvise(p, n, MADV_HUGEPAGE);  // a hint only
#endif
  return p;
}

void release(void* p, size_t bytes) {
  const size_t n = rounded(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (n <= c.budget) {
      c.blocks.emplace_front(n, p);
      c.bytes += n;
      c.trim();
      return;
    }
  }
  std::free(p);
}

}  // namespace gemmacpp::host_blocks
