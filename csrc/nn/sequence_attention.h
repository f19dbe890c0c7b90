// One sequence's attention in a forward over packed rows (packed_batch.h), as the Gemma and
// Griffin forwards make it: every sequence sees only its own keys, so the kernel is called once per
// sequence on its slice of the packed q, k, v. With a cache, a sliding-window layer keeps its last
// W keys and values in a ring (position p in row p % W); ring_window() lays the window out in
// position order for the kernel.
#pragma once

#include <cstdint>
#include <vector>

#include "csrc/cpu/attention.h"

namespace gemmacpp {

// Causal float32 self-attention of sequence rows [r0, r0 + n) of packed q / out [M, H * D] and
// k / v [M, K * D] over its own n keys. The caller adds the window, softcap and scale, and a
// cache's keys.
cpu::AttentionArgs packed_sequence_attention(const float* q, float* out, const float* k, const float* v,
                                             int64_t r0, int64_t n, int64_t H, int64_t K, int64_t D);

// The sequence's n new keys/values (rows of R floats, at positions pos0, pos0 + 1, ...) go into its
// ring of W rows, which already holds positions up to pos0 - 1 (only the last W are kept there).
// a then attends over the ring's older keys (up to W - 1, in position order) followed by the new
// ones, copied to one contiguous run in k_win / v_win: the kernel needs relative positions only.
// Returns the key index of the first new token (the number of older keys).
int64_t ring_window(float* ring_k, float* ring_v, int64_t W, int64_t pos0, const float* new_k,
                    const float* new_v, int64_t n, int64_t R, std::vector<float>& k_win,
                    std::vector<float>& v_win, cpu::AttentionArgs& a);

}  // namespace gemmacpp
