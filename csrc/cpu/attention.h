// CPU attention kernels: a tiled online-softmax (flash-attention style) kernel for prefill and a
// split-K (flash-decoding) kernel for few queries. Neither builds the full score matrix, and both
// split work along boundaries that depend only on the problem shape, so results are bitwise
// identical for any thread count.
#pragma once

#include <cstdint>

#include "csrc/core/attention_args.h"

namespace gemmacpp::cpu {

using AttentionArgs = gemmacpp::AttentionArgs;  // csrc/core/attention_args.h

// out = softmax(mask(softcap(scale * q k^T))) v per (batch, query head); rows with no visible key
// get zeros. Requires B, Tq, Hq, D >= 1 and Hq % Hkv == 0; Tk may be 0.
void attention(const AttentionArgs& a);

}  // namespace gemmacpp::cpu
