#pragma once
#include "csrc/core/tensor.h"

namespace gemmacpp::ops {
// AltUp's predict step: streams [N, ..., d], router_logits [..., N], coefs [N * N, N] (all float32).
// Per row, C = reshape(coefs @ tanh(router_logits), [N, N]) and out[k] = streams[k] +
// sum_n C[k][n] streams[n]. Returns [N, ..., d].
Tensor altup_predict(const TensorView& streams, const TensorView& router_logits, const TensorView& coefs,
                     const TensorView* out = nullptr);
// AltUp's correct step: predictions [N, ..., d], activated [..., d], router_logits [..., N], coefs
// [N, N] (all float32). Per row, c = coefs @ tanh(router_logits) + 1 and out[k] = predictions[k] +
// c[k] (activated - predictions[0]). Returns [N, ..., d].
Tensor altup_correct(const TensorView& predictions, const TensorView& activated, const TensorView& router_logits,
                     const TensorView& coefs, const TensorView* out = nullptr);
// AltUp's magnitude matching (Gemma 3n, around the layers): streams [N, ..., d] float32; out[0] =
// streams[0], out[k] = streams[k] * rms(streams[0]) / sqrt(max(mean(streams[k]^2), eps)) per row.
Tensor altup_rescale(const TensorView& streams, float eps, const TensorView* out = nullptr);
}  // namespace gemmacpp::ops
