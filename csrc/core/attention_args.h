// The arguments of one attention call, shared by the CPU and CUDA kernels (cpu::AttentionArgs and
// cuda::AttentionArgs name this type): the ops layer fills it once whatever the device, and the
// pointers are on the device that runs it.
#pragma once

#include <cstdint>

#include "csrc/core/dtype.h"

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

}  // namespace gemmacpp
