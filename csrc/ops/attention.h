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
  // causal/window rule; both columns non-decreasing. Packed sequences: [total_q, 2], each row
  // in its own sequence's key indices, non-decreasing within each sequence.
  const TensorView* key_range = nullptr;
};

// Scaled dot-product attention, q [B,Tq,Hq,D], k/v [B,Tk,Hkv,D] with Hq % Hkv == 0; returns
// [B,Tq,Hq,D] in q's dtype (the visibility rule: csrc/core/attention_args.h).
Tensor attention(const TensorView& q, const TensorView& k, const TensorView& v,
                 const AttentionOptions& opt, const TensorView* out = nullptr);

// The same attention over packed sequences (flash-attention's varlen layout): q [total_q, Hq, D],
// k/v [total_k, Hkv, D]; sequence s is rows [cu_seqlens_q[s], cu_seqlens_q[s + 1]) of q and
// [cu_seqlens_k[s], cu_seqlens_k[s + 1]) of k and v (int32 or int64 [n + 1] on the CPU, from 0 to
// the row count, non-decreasing). The options apply to every sequence, in its own key indices;
// q_start may not be given: each sequence's queries are its last keys (q_start = Tk_s - Tq_s).
// Returns [total_q, Hq, D]; each sequence's rows are bitwise those of attention() on it alone.
// CPU only: q on a GPU raises NotImplementedError.
Tensor attention_varlen(const TensorView& q, const TensorView& k, const TensorView& v,
                        const TensorView& cu_seqlens_q, const TensorView& cu_seqlens_k,
                        const AttentionOptions& opt, const TensorView* out = nullptr);

}  // namespace gemmacpp::ops
