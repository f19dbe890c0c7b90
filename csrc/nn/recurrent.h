// Griffin's recurrent block (RecurrentGemma's temporal mixing): h -> y = gelu(linear_y(h));
// u = rg_lru(conv1d(linear_x(h))); out = linear_out(u * y). The conv and the RG-LRU carry state
// along time, kept per sequence in the cache's RecurrentSlot. The RG-LRU's gates are block-diagonal
// per head. Hook sites conv.hook_out, rglru.hook_a (the recurrence weights a_t: the fused kernel
// keeps them in registers, so they are formed only for a hook, and an edit of them runs the scan on
// the edited values) and rglru.hook_h (every state h_t), all [B, T, lru_width].
#pragma once

#include <cstdint>
#include <vector>

#include "csrc/nn/cache.h"
#include "csrc/nn/forward.h"
#include "csrc/nn/linear.h"
#include "csrc/nn/scope.h"

namespace gemmacpp::nn {


class RecurrentBlock {
 public:
  // s: the layer's scope ("blocks.3."): weights linear_x, linear_y, linear_out (with biases),
  // conv.weight [width, 1, conv_width] and conv.bias, rglru.a_param [width], rglru.gate_x and
  // rglru.gate_a (.weight [heads, width/heads, width/heads], .bias [heads, width/heads]).
  RecurrentBlock(const Scope& s, int64_t d, int64_t width, int64_t heads, int64_t conv_width, int64_t layer);

  SlotSpec cache_slot() const { return RecurrentSpec{width_, conv_width_ - 1}; }
  void operator()(const Forward& f, const float* h, float* out) const;  // h, out [M, d]

 private:
  int64_t width_, heads_, conv_width_, layer_;
  Linear linear_x_, linear_y_, linear_out_;
  std::vector<float> conv_w_;  // [K, width], transposed from HF's [width, 1, K]
  std::vector<float> conv_b_;  // [width]
  const WeightTensor* a_param_;
  // Gate projections per head, transposed from HF's [H, in, out] to [H, out, in] in the stored
  // dtype, so that each head is one x W^T product.
  DType gate_dtype_ = DType::kF32;
  std::vector<uint8_t> gate_x_w_, gate_a_w_;
  std::vector<float> gate_x_b_, gate_a_b_;  // [width]
  int conv_site_, a_site_, h_site_;
};

}  // namespace gemmacpp::nn
