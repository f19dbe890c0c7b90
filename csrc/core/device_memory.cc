#include "csrc/core/device_memory.h"

#include <atomic>

#include "csrc/core/error.h"

namespace gemmacpp::device_memory {
namespace {
std::atomic<AllocateFn> cuda_allocate{nullptr};
}  // namespace

void register_cuda(AllocateFn allocate) { cuda_allocate.store(allocate); }

std::shared_ptr<void> allocate_cuda(size_t bytes, int device) {
  const AllocateFn f = cuda_allocate.load();
  GC_CHECK(f != nullptr, ValueError, "this build of gemmacpp has no CUDA support");
  return f(bytes, device);
}

}  // namespace gemmacpp::device_memory
