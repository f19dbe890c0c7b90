// Attention computed the plain way, with the score matrix and the pattern written out: the path a
// forward takes when a hook asks for blocks.{i}.attn.hook_scores or hook_pattern (the fused
// kernels never build them), a reference beside the fast kernel it shadows. Three steps, so that
// the caller can offer the scores and the pattern to its hooks between them and the layer's
// output follows what the hooks left.
//
// The problems are the per-sequence float32 calls the fast kernel would get (one AttentionArgs
// per sequence, B = 1, Tq possibly 0). The arrays are [n, H, T, Tk]: sequence i's query t at row
// t, key index j of the call at column first_key[i] + j (its absolute position), so that every
// sequence's keys line up; T >= every Tq, Tk >= every first_key[i] + Tk. Columns a sequence does
// not hold, and masked keys, score -inf and get weight 0; rows past a sequence's Tq are zero.
#pragma once

#include <cstdint>

#include "csrc/core/attention_args.h"

namespace gemmacpp::cpu::reference {

// s = mask(softcap(scale * q k^T)).
void attention_scores(const AttentionArgs* seqs, int64_t n, const int64_t* first_key, int64_t T,
                      int64_t Tk, float* s);
// In place: the softmax of each row over the keys its sequence holds (edits of the scores may
// unmask keys); -inf gets weight 0 and a row with no finite score is all zeros.
void attention_pattern(const AttentionArgs* seqs, int64_t n, const int64_t* first_key, int64_t T,
                       int64_t Tk, float* s);
// Each sequence's out = pattern v, from the held keys' columns only.
void attention_values(const AttentionArgs* seqs, int64_t n, const int64_t* first_key, int64_t T,
                      int64_t Tk, const float* p);

}  // namespace gemmacpp::cpu::reference
