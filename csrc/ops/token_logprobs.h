#pragma once
#include <utility>

#include "csrc/core/tensor.h"

namespace gemmacpp::ops {
// The log-probability of each row's target token under softmax(logits), in float64, and each
// row's argmax: logits [..., V] float32, targets [...] int32/int64 in [0, V). Returns
// (logp [...] float64, argmax [...] int64).
std::pair<Tensor, Tensor> token_logprobs(const TensorView& logits, const TensorView& targets);
}  // namespace gemmacpp::ops
