// The CUDA runtime as the rest of the core sees it: plain C++, no CUDA headers.
#pragma once

#include <cstddef>
#include <memory>

namespace gemmacpp::cuda {

// Number of usable devices; 0 when there is no driver or no GPU (never throws).
int device_count();
// Device memory that frees itself; throws ValueError when allocation fails.
std::shared_ptr<void> allocate(size_t bytes, int device);
// Throws ValueError naming `what` if the last launch on this thread failed.
void check_launch(const char* what);

}  // namespace gemmacpp::cuda
