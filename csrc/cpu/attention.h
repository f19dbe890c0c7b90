// CPU attention kernels: a tiled online-softmax (flash-attention style) kernel for prefill and a
// split-K (flash-decoding) kernel for few queries. Neither builds the full score matrix, and both
// split work along boundaries that depend only on the problem shape, so results are bitwise
// identical for any thread count.
#pragma once

#include <cstdint>

#include "csrc/core/dtype.h"

namespace gemmacpp::cpu {

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
  // bidirectional spans inside a causal sequence are expressed with these.
  const int64_t* key_lo = nullptr;
  const int64_t* key_hi = nullptr;
};

// out = softmax(mask(softcap(scale * q k^T))) v per (batch, query head); rows with no visible key
// get zeros. Requires B, Tq, Hq, D >= 1 and Hq % Hkv == 0; Tk may be 0.
void attention(const AttentionArgs& a);

}  // namespace gemmacpp::cpu
