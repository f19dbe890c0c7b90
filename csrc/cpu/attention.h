// CPU attention kernels: a tiled online-softmax (flash-attention style) kernel for prefill and a
// split-K (flash-decoding) kernel for few queries. Neither builds the full score matrix, and both
// split work along boundaries that depend only on the problem shape, so results are bitwise
// identical for any thread count; both compute a query row the same way, so a row's result does
// not depend on the other queries of the call (batch invariance, attention.cc).
#pragma once

#include <cstdint>

#include "csrc/core/attention_args.h"

namespace gemmacpp::cpu {

using AttentionArgs = gemmacpp::AttentionArgs;  // csrc/core/attention_args.h

// out = softmax(mask(softcap(scale * q k^T))) v per (batch, query head); rows with no visible key
// get zeros; a NaN or +inf visible score, or visible scores that are all -inf, give NaN (torch). Requires B, Tq, Hq, D >= 1 and Hq % Hkv == 0; Tk may be 0.
void attention(const AttentionArgs& a);

// attention() on each of seqs[0..n), independent problems (normally the sequences of a ragged
// batch, B = 1 each, each with its own pointers, shapes and mask), in shared parallel regions:
// many short sequences keep every thread busy where one call per sequence would not. Each output
// is bitwise identical to attention(seqs[i]) alone, for any thread count. Entries with B, Tq, Hq
// or D == 0 are skipped; outputs must not overlap.
void attention_varlen(const AttentionArgs* seqs, int64_t n);

}  // namespace gemmacpp::cpu
