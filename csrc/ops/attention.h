#pragma once
#include <cstdint>
#include <optional>

#include "csrc/core/tensor.h"

namespace gemmacpp::ops {

struct AttentionOptions {
  bool causal = true;
  std::optional<int64_t> window;   // keys with p - j < window; >= 1
  std::optional<float> softcap;    // s = softcap * tanh(s / softcap); > 0
  std::optional<float> scale;      // default head_dim ** -0.5
  std::optional<int64_t> q_start;  // absolute position of query 0; default Tk - Tq
  int64_t prefix_len = 0;          // keys [0, prefix_len) are visible to every query
  // int64 [Tq, 2]: query i sees keys [lo, hi) = key_range[i] (plus the prefix) instead of the
  // causal/window rule; both columns non-decreasing.
  const TensorView* key_range = nullptr;
};

// Scaled dot-product attention, q [B,Tq,Hq,D], k/v [B,Tk,Hkv,D] with Hq % Hkv == 0; returns
// [B,Tq,Hq,D] in q's dtype (see DESIGN.md for the visibility rule).
Tensor attention(const TensorView& q, const TensorView& k, const TensorView& v,
                 const AttentionOptions& opt, const TensorView* out = nullptr);

}  // namespace gemmacpp::ops
