#include "csrc/cuda/attention.h"

#include "csrc/core/error.h"
#include "csrc/cuda/attention_split.cuh"

namespace gemmacpp::cuda {

void attention(const AttentionArgs& a, int device) {
  GC_CHECK(a.D >= 1 && a.D <= kMaxAttentionHeadDim, ValueError, "attention: head_dim ", a.D,
           " is not supported on CUDA (1 to ", kMaxAttentionHeadDim, ")");
  GC_CHECK(a.key_lo == nullptr && a.key_hi == nullptr, ValueError,
           "attention: explicit key ranges are not supported on CUDA");
  if (a.B == 0 || a.Tq == 0 || a.Hq == 0) return;
  // Few queries read the whole KV cache once per query group: the split-K kernel spreads the keys
  // over the SMs. Prefill in 16-bit types is compute-bound: tensor cores. float32 has no
  // tensor-core path (TF32 would lose precision the CPU op keeps), so it takes the split kernel.
  const bool half_type = a.dtype == DType::kF16 || a.dtype == DType::kBF16;
  if (half_type && a.Tq > 8) {
    detail::attention_mma(a, device);
  } else {
    detail::attention_split(a, device);
  }
}

}  // namespace gemmacpp::cuda
