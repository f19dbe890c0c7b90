// One layer's attention computed the plain way, with the score matrix and the pattern written
// out, for when a hook asks for blocks.{i}.attn.hook_scores or hook_pattern (the fused kernel never
// builds them). The per-sequence calls the forward would give the kernel are collected with add();
// run() then offers the scores and the pattern of the whole batch to the hooks and computes the
// layer's per-head output z = pattern @ v from what the hooks left, so edits take effect.
#pragma once

#include <cstdint>
#include <vector>

#include "csrc/cpu/attention.h"
#include "csrc/nn/hooks.h"

namespace gemmacpp {

class AttentionProbe {
 public:
  // A packed batch: sequence b's count[b] queries sit at packed rows [offset[b], offset[b] +
  // count[b]) and absolute positions start[b] + 0, 1, ...; T = max count (the hooks' Tq).
  AttentionProbe(int64_t T, const std::vector<int64_t>& count, const std::vector<int64_t>& offset,
                 const std::vector<int64_t>& start);

  // Sequence b's attention call as the forward would make it (float32, B = 1): its keys and
  // values are copied, with a.q_start locating the queries among them.
  void add(int64_t b, const cpu::AttentionArgs& a);

  // q: rotated queries, packed [M, H * D]; out: z, packed [M, H * D]. The arrays offered are
  // [B, H, T, Tk] with key index = absolute position, Tk = max(start[b] + count[b]): masked keys
  // (and keys the cache no longer holds) score -inf and get weight 0; padding rows are zero.
  void run(HookSet& hooks, int64_t layer, const float* q, float* out);

 private:
  struct Sequence {
    std::vector<float> k, v;  // [n_keys, Hkv * D]
    int64_t n_keys = 0;
    int64_t first_key = 0;  // absolute position of key 0
    int64_t q_start = 0;    // key index of query 0 (for the mask rule, in the kernel's terms)
    std::vector<int64_t> ranges;  // per query [lo, hi) key ranges, when the call had them
  };
  int64_t T_, Tk_ = 0;
  std::vector<int64_t> count_, offset_, start_;
  std::vector<Sequence> seqs_;
  cpu::AttentionArgs mask_;  // H, D, window, softcap, scale, causal, prefix_len of the layer
};

}  // namespace gemmacpp
