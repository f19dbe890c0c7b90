#pragma once
#include <string>
#include <utility>

#include "csrc/core/tensor.h"

namespace gemmacpp::ops {

// Gemma 4's router after its projection: logits [..., E] float32 -> (ids [..., k] int32, weights
// [..., k] float32), see cpu::moe_route (softmax, top-k with ties to the lower index, renormalised,
// times per_expert_scale [E] of any float dtype when given). 1 <= k <= E.
std::pair<Tensor, Tensor> moe_route(const TensorView& logits, int64_t k,
                                    const TensorView* per_expert_scale = nullptr);

// One stack of E expert matrices [N, K] as Python passes it: either `values`, a float32, float16
// or bfloat16 tensor [E, N, K], or `blocks`, the raw GGML blocks of type `qtype` (uint8, any shape,
// read in order) of E matrices [N, K] back to back, with E, N, K given. Read in place.
struct ExpertWeights {
  const TensorView* values = nullptr;
  const TensorView* blocks = nullptr;
  std::string qtype;
  int64_t E = 0, N = 0, K = 0;
};

// The experts' part of a mixture-of-experts layer: x [..., D] float32; ids [..., k] int32 or
// int64 in [0, E); weights [..., k] float32 (x's leading shape); gate_up E matrices [2F, D] (gate
// rows, then up rows), down E matrices [D, F]. Returns [..., D] float32: for each row u of x,
// sum_j weights[j] * down[ids[j]] @ (gelu_tanh(gate[ids[j]] @ u) * (up[ids[j]] @ u)). CPU only.
Tensor moe(const TensorView& x, const TensorView& ids, const TensorView& weights,
           const ExpertWeights& gate_up, const ExpertWeights& down,
           const TensorView* out = nullptr);

}  // namespace gemmacpp::ops
