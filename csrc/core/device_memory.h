// Memory on a device other than the CPU, as the core sees it: a backend (the CUDA runtime)
// registers its allocator when the module starts, so that the core includes no backend header and
// a build without the backend says so where memory is asked for.
#pragma once

#include <cstddef>
#include <memory>

namespace gemmacpp::device_memory {

// Device memory that frees itself; throws ValueError when allocation fails.
using AllocateFn = std::shared_ptr<void> (*)(size_t bytes, int device);

void register_cuda(AllocateFn allocate);
// ValueError when no backend for CUDA devices was registered (a build without CUDA).
std::shared_ptr<void> allocate_cuda(size_t bytes, int device);

}  // namespace gemmacpp::device_memory
