// The arguments of one attention call, shared by the CPU and CUDA kernels (cpu::AttentionArgs and
// cuda::AttentionArgs name this type): the ops layer fills it once whatever the device, and the
// pointers are on the device that runs it. Also the visibility rule, written once here for the
// host and the device: which keys a query sees.
#pragma once

#include <cstdint>

#include "csrc/core/dtype.h"

// Functions that nvcc must compile for both sides; plain inline functions elsewhere.
#if defined(__CUDACC__)
#define GEMMACPP_HOST_DEVICE __host__ __device__
#else
#define GEMMACPP_HOST_DEVICE
#endif

namespace gemmacpp {

// Strides are in elements; the last (head_dim) dimension of every tensor is contiguous.
struct AttentionArgs {
  DType dtype = DType::kF32;  // of q, k, v and out
  const void* q = nullptr;    // [B, Tq, Hq, D]
  const void* k = nullptr;    // [B, Tk, Hkv, D]
  const void* v = nullptr;    // [B, Tk, Hkv, D]
  void* out = nullptr;        // [B, Tq, Hq, D]
  int64_t B = 0, Tq = 0, Tk = 0, Hq = 0, Hkv = 0, D = 0;
  int64_t q_stride[3] = {}, k_stride[3] = {}, v_stride[3] = {}, out_stride[3] = {};  // b, t, h
  bool causal = true;
  int64_t window = 0;    // 0: none
  float softcap = 0.0f;  // 0: none
  float scale = 1.0f;
  int64_t q_start = 0;     // absolute position of query 0
  int64_t prefix_len = 0;  // keys [0, prefix_len) are visible to every query
  // Optional explicit per-query key ranges [Tq] (shared by the batch): query i sees keys
  // [key_lo[i], key_hi[i]) (clipped to [0, Tk)) instead of the causal/window rule, plus the
  // prefix. Both must be non-decreasing in i (the tiling relies on it). Masks such as
  // bidirectional spans inside a causal sequence are expressed with these. CPU only for now.
  const int64_t* key_lo = nullptr;
  const int64_t* key_hi = nullptr;
};

// Keys [lo, hi), lo <= hi.
struct AttentionKeyRange {
  int64_t lo, hi;
};

// ---- the visibility rule ------------------------------------------------------------------------
// Key j is visible to the query at absolute position p (query i = p - q_start) iff
// j < prefix_len, or j lies in the query's main range [lo, hi): the explicit [key_lo[i],
// key_hi[i]) when given, else hi = causal ? min(p + 1, Tk) : Tk and
// lo = window > 0 ? max(0, p - window + 1) : 0; the main range is clipped to [0, Tk).

// The main range of position p. Neither end decreases as p grows (explicit ranges must be
// non-decreasing), so the main keys of positions p0..p1 lie in [lo(p0), hi(p1)): kernels bound
// the keys of a block of queries by its first and last query.
GEMMACPP_HOST_DEVICE inline AttentionKeyRange attention_main_range(const AttentionArgs& a,
                                                                   int64_t p) {
  int64_t lo, hi;
  if (a.key_lo) {
    lo = a.key_lo[p - a.q_start];
    hi = a.key_hi[p - a.q_start];
  } else {
    lo = a.window > 0 ? p - a.window + 1 : 0;
    hi = a.causal && p + 1 < a.Tk ? p + 1 : a.Tk;
  }
  hi = hi < 0 ? 0 : (hi > a.Tk ? a.Tk : hi);
  lo = lo < 0 ? 0 : (lo > hi ? hi : lo);
  return {lo, hi};
}

// Whether key j is visible to a query whose main range is `main`.
GEMMACPP_HOST_DEVICE inline bool attention_key_visible(const AttentionArgs& a,
                                                       const AttentionKeyRange& main, int64_t j) {
  return j < a.prefix_len || (j >= main.lo && j < main.hi);
}

GEMMACPP_HOST_DEVICE inline bool attention_key_visible(const AttentionArgs& a, int64_t p,
                                                       int64_t j) {
  return attention_key_visible(a, attention_main_range(a, p), j);
}

// Whether every key of [t0, t1) (t0 < t1 <= Tk) is visible to every position of p0..p1
// (p0 <= p1): kernels skip the element mask on such tiles.
GEMMACPP_HOST_DEVICE inline bool attention_keys_all_visible(const AttentionArgs& a, int64_t p0,
                                                            int64_t p1, int64_t t0, int64_t t1) {
  if (t1 <= a.prefix_len) return true;
  // Keys below prefix_len are visible anyway; the rest must lie in every main range, and the
  // main ranges of p0..p1 all contain [lo(p1), hi(p0)).
  const int64_t first_main = t0 > a.prefix_len ? t0 : a.prefix_len;
  return first_main >= attention_main_range(a, p1).lo && t1 <= attention_main_range(a, p0).hi;
}

}  // namespace gemmacpp
