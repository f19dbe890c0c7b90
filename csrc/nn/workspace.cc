#include "csrc/nn/workspace.h"

#include <algorithm>

namespace gemmacpp::nn {

float* Workspace::take(int64_t n) {
  n = (std::max<int64_t>(n, 1) + 15) / 16 * 16;  // whole 64-byte lines: the next take stays aligned
  while (true) {
    if (chunk_ < chunks_.size()) {
      if (used_ + n <= chunk_floats_[chunk_]) {
        float* p = static_cast<float*>(chunks_[chunk_].view().data) + used_;
        used_ += n;
        return p;
      }
      if (used_ > 0) {  // the rest of this chunk is too small: go on to the next one
        ++chunk_;
        used_ = 0;
        continue;
      }
      // An empty chunk too small for n: it and those after it hold nothing live (frames give
      // buffers back in stack order), so they make way for a larger one.
      chunks_.resize(chunk_);
      chunk_floats_.resize(chunk_);
    }
    const int64_t size = std::max<int64_t>(n, chunk_floats_.empty() ? 0 : 2 * chunk_floats_.back());
    chunks_.push_back(Tensor::empty(DType::kF32, {size}, device_));
    chunk_floats_.push_back(size);
    chunk_ = chunks_.size() - 1;
    used_ = 0;
  }
}

}  // namespace gemmacpp::nn
