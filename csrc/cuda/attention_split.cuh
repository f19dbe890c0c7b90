// Internal to the CUDA attention: launchers of the two kernel families, called by attention.cu.
#pragma once

#include "csrc/cuda/attention.h"

namespace gemmacpp::cuda::detail {

// Split-K (flash-decoding) attention on CUDA cores: any dtype, any Tq (fast for Tq <= 8).
void attention_split(const AttentionArgs& a, int device);
// Tensor-core (mma.sync m16n8k16) flash attention forward: float16 and bfloat16 only.
void attention_mma(const AttentionArgs& a, int device);

}  // namespace gemmacpp::cuda::detail
