// The work buffers of one forward. Blocks take their temporaries from it in stack order and give
// them back when they return (a Frame), so every layer reuses the memory of the layer before: a
// fresh allocation per layer and block would fault in new pages each time (measured: the kernel's
// page clearing grew threefold, 2-3 % of a batched decode step). The memory lives until the
// forward ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "csrc/core/tensor.h"

namespace gemmacpp::nn {

class Workspace {
 public:
  explicit Workspace(Device device) : device_(device) {}
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // Buffers taken through a frame are given back when it ends; frames nest.
  class Frame {
   public:
    explicit Frame(Workspace& w) : w_(w), chunk_(w.chunk_), used_(w.used_) {}
    ~Frame() {
      w_.chunk_ = chunk_;
      w_.used_ = used_;
    }
    Frame(const Frame&) = delete;
    Frame& operator=(const Frame&) = delete;
    // n float32 values, 64-byte aligned, uninitialised (every user writes before it reads).
    float* take(int64_t n) { return w_.take(n); }

   private:
    Workspace& w_;
    size_t chunk_;
    int64_t used_;
  };

 private:
  float* take(int64_t n);

  Device device_;
  std::vector<Tensor> chunks_;  // float32, each of chunk_floats_[i] values
  std::vector<int64_t> chunk_floats_;
  size_t chunk_ = 0;   // the chunk being filled
  int64_t used_ = 0;   // of it
};

}  // namespace gemmacpp::nn
