// The visibility rule (csrc/core/attention_args.h) as the CUDA attention kernels and their
// launchers use it: which keys a block of queries must walk, and which tiles need no element mask.
#pragma once

#include <cstdint>

#include "csrc/core/attention_args.h"

namespace gemmacpp::cuda {

// The call's arguments, copied by value into the kernels' parameters: the rule reads causal,
// window, prefix_len and Tk (and key_lo/key_hi, which cuda::attention does not take yet).
struct AttentionMask {
  AttentionArgs args;

  __host__ __device__ __forceinline__ bool visible(int64_t j, int64_t p) const {
    return attention_key_visible(args, p, j);
  }
  // Every key of [j0, j1) (j1 <= Tk) is visible to every position of p_lo..p_hi.
  __host__ __device__ __forceinline__ bool all_visible(int64_t j0, int64_t j1, int64_t p_lo,
                                                       int64_t p_hi) const {
    return attention_keys_all_visible(args, p_lo, p_hi, j0, j1);
  }
  // Whether the query at position p sees any key at all.
  __host__ __device__ __forceinline__ bool sees_keys(int64_t p) const {
    const AttentionKeyRange r = attention_main_range(args, p);
    return r.lo < r.hi || (args.prefix_len > 0 && args.Tk > 0);
  }
};

// A visible score that makes its row NaN, as in torch's softmax: NaN, or +inf (inf - inf).
__device__ __forceinline__ bool poisons_row(float score) {
  return isnan(score) || score == INFINITY;
}

// The factor of a finished row's unnormalised output (sum l of its weights): 1 / l; NaN for a
// row that saw a NaN or +inf score (`poisoned`) or whose visible scores are all -inf (torch's
// softmax of -infs), 0 for a row that sees no key.
__device__ __forceinline__ float output_scale(float l, bool poisoned, bool sees_keys) {
  if (poisoned) return NAN;
  if (l > 0.0f) return 1.0f / l;
  return sees_keys ? NAN : 0.0f;
}

// The keys that any query at positions [p_lo, p_hi] can see, as two disjoint ordered ranges
// [0, first_end) and [second_begin, second_end) of [0, Tk): the prefix, then the rest of the
// main ranges. Keys outside both are invisible to every such query, so kernels skip them whole.
struct KeyRanges {
  int64_t first_end = 0, second_begin = 0, second_end = 0;

  __host__ __device__ __forceinline__ int64_t count() const {
    return first_end + (second_end - second_begin);
  }
  // The key at index v of the concatenation of the two ranges.
  __host__ __device__ __forceinline__ int64_t key(int64_t v) const {
    return v < first_end ? v : second_begin + (v - first_end);
  }
};

__host__ __device__ inline KeyRanges key_ranges(const AttentionMask& m, int64_t p_lo,
                                                int64_t p_hi) {
  const AttentionArgs& a = m.args;
  KeyRanges r;
  r.first_end = a.prefix_len < a.Tk ? a.prefix_len : a.Tk;
  // The main ranges only grow with the position (attention_main_range).
  int64_t lo = attention_main_range(a, p_lo).lo;
  const int64_t hi = attention_main_range(a, p_hi).hi;
  if (lo < r.first_end) lo = r.first_end;
  r.second_begin = lo;
  r.second_end = hi > lo ? hi : lo;
  return r;
}

}  // namespace gemmacpp::cuda
