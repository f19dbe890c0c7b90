// CUDA attention: a tensor-core (mma.sync) flash-attention forward for float16/bfloat16 prefill,
// and a split-K (flash-decoding) kernel on CUDA cores for few queries and for float32.
#pragma once

#include <cstdint>

#include "csrc/core/dtype.h"

namespace gemmacpp::cuda {

// The contract of cpu::AttentionArgs, on device memory. Strides are in elements; the last
// (head_dim) dimension of every tensor is contiguous.
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
};

// Largest head_dim the CUDA kernels take.
constexpr int64_t kMaxAttentionHeadDim = 256;

// out = softmax(mask(softcap(scale * q k^T))) v per (batch, query head) on `device` (default
// stream); rows with no visible key get zeros. Requires B, Tq, Hq >= 1, 1 <= D <= 256 and
// Hq % Hkv == 0; Tk may be 0.
void attention(const AttentionArgs& a, int device);

}  // namespace gemmacpp::cuda
