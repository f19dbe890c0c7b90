// Large host buffers (2 MiB-aligned, transparent huge pages) with a bounded cache of freed ones.
// A fresh buffer is zero-filled by the kernel page by page on first touch: for a streaming op
// that writes 40 MB, that doubles the write traffic and adds system time comparable to the op
// itself. Freed blocks are kept (newest first, up to a byte budget) and handed out again to a
// request of exactly the same rounded size, as repeated calls on the same shapes make. The budget
// is GEMMACPP_HOST_CACHE_MB (default 256; 0 turns caching off), read once.
#pragma once

#include <cstddef>

namespace gemmacpp::host_blocks {

constexpr size_t kAlign = size_t(2) << 20;  // 2 MiB: one transparent huge page

// A block of at least `bytes` (rounded up to kAlign), from the cache or newly allocated; null
// when out of memory. Give it back with release(p, bytes) using the same `bytes`.
void* acquire(size_t bytes);
void release(void* p, size_t bytes);

}  // namespace gemmacpp::host_blocks
