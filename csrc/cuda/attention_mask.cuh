// The visibility rule of DESIGN.md, shared by the CUDA attention kernels and their launchers.
// Query i sits at absolute position p = q_start + i. Key j is visible iff j < prefix_len, or
// (not causal or j <= p) and (window == 0 or p - j < window).
#pragma once

#include <cstdint>

namespace gemmacpp::cuda {

struct AttentionMask {
  int64_t prefix_len = 0;
  int64_t window = 0;  // 0: none
  bool causal = true;

  __host__ __device__ __forceinline__ bool visible(int64_t j, int64_t p) const {
    return j < prefix_len || ((!causal || j <= p) && (window == 0 || p - j < window));
  }
};

// The keys that any query at positions [p_lo, p_hi] can see, as two disjoint ordered ranges
// [0, first_end) and [second_begin, second_end) of [0, Tk): the prefix, then the causal/window
// band. Keys outside both are invisible to every such query, so kernels skip them whole.
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
                                                int64_t p_hi, int64_t Tk) {
  KeyRanges r;
  r.first_end = m.prefix_len < Tk ? m.prefix_len : Tk;
  int64_t lo = 0, hi = Tk;
  if (m.window > 0 && p_lo - m.window + 1 > lo) lo = p_lo - m.window + 1;
  if (m.causal && p_hi + 1 < hi) hi = p_hi + 1;
  if (lo < r.first_end) lo = r.first_end;
  r.second_begin = lo;
  r.second_end = hi > lo ? hi : lo;
  return r;
}

}  // namespace gemmacpp::cuda
