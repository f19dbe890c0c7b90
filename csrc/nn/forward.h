// What every block of one forward shares: where it runs, the packed batch and its positions, the
// cache, the hooks and the attention masks' extra spans. Blocks read it and never own it.
#pragma once

#include <cstdint>
#include <vector>

#include "csrc/core/tensor.h"
#include "csrc/nn/cache.h"
#include "csrc/nn/packed_batch.h"
#include "csrc/nn/workspace.h"

namespace gemmacpp::nn {

struct SharedKv;  // nn/attention.h

struct Forward {
  Device device;
  const PackedBatch& batch;
  const std::vector<int64_t>& positions;  // per packed row
  Cache* cache = nullptr;
  PackedHooks offer;
  // Per sequence: its bidirectional spans as (start, end) pairs of its own token indices (empty:
  // none); see ForwardArgs::spans.
  const std::vector<std::vector<int64_t>>* spans = nullptr;
  bool span_in_window = true;
  Workspace* workspace = nullptr;  // the blocks' work buffers (nn/workspace.h)
  // Per-layer inputs (PLE, nn/per_layer.h), [M, L, P] row-major, or nullptr: layer l's are the
  // P floats at per_layer_input + (r * L + l) * P of packed row r.
  const float* per_layer_input = nullptr;
  // Keys and values layers publish to later layers of the same forward (KV sharing), or nullptr
  // when no layer shares.
  SharedKv* shared_kv = nullptr;

  int64_t rows() const { return batch.M; }
  HookSet* hooks() const { return offer.hooks(); }
};

// A float32 buffer of n elements on a device, for work outside a forward's layers (uninitialised:
// every user writes it first); blocks take theirs from the forward's Workspace.
class Buffer {
 public:
  Buffer(int64_t n, Device device = {}) : t_(Tensor::empty(DType::kF32, {n}, device)) {}
  float* data() const { return static_cast<float*>(t_.view().data); }
  operator float*() const { return data(); }

 private:
  Tensor t_;
};

}  // namespace gemmacpp::nn
