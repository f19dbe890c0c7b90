// CUDA attention: a tensor-core (mma.sync) flash-attention forward for float16/bfloat16 prefill,
// and a split-K (flash-decoding) kernel on CUDA cores for few queries and for float32.
#pragma once

#include <cstdint>

#include "csrc/core/attention_args.h"

namespace gemmacpp::cuda {

// The contract of cpu::AttentionArgs, on device memory; explicit key ranges are not taken yet.
using AttentionArgs = gemmacpp::AttentionArgs;  // csrc/core/attention_args.h

// Largest head_dim the CUDA kernels take.
constexpr int64_t kMaxAttentionHeadDim = 256;

// out = softmax(mask(softcap(scale * q k^T))) v per (batch, query head) on `device` (default
// stream); rows with no visible key get zeros. Requires B, Tq, Hq >= 1, 1 <= D <= 256 and
// Hq % Hkv == 0; Tk may be 0.
void attention(const AttentionArgs& a, int device);

}  // namespace gemmacpp::cuda
