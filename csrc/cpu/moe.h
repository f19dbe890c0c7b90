// Mixture of experts (Gemma 4's MoE feed-forward): routing, and the experts' gated MLPs run only on
// the tokens routed to them.
#pragma once

#include <cstdint>

#include "csrc/core/expert_stack.h"

namespace gemmacpp::cpu {

// For each of the M rows of logits ([M, E] float32, rows back to back), as transformers'
// Gemma4TextRouter: p = softmax(row) in float32 (the row's maximum subtracted, exp(l - max) summed
// in index order, then each term divided by the sum); the k largest p, in descending order, into
// ids [M, k]; their p divided by their sum (taken in that order), times per_expert_scale[id] when
// that [E] array is given (else 1), into weights [M, k].
// Ties (equal p) go to the lower expert index, both for which experts are chosen and for their
// order; a NaN p counts as larger than any number (as torch.topk). torch.topk on the CPU gives no
// such guarantee: on equal values it returns an order (and, at the k-th place, a choice) that
// depends on E and k, so the two agree on ties only by chance; on distinct probabilities they
// agree. exp is the C library's in scalar code, so the routing is the same on every SIMD target.
// Multithreaded over rows.
void moe_route(const float* logits, int64_t M, int64_t E, int64_t k, const float* per_expert_scale,
               int32_t* ids, float* weights);

// The float32 values moe_experts needs in `workspace` for M tokens, k experts each, model width D
// and expert width F.
int64_t moe_workspace_floats(int64_t M, int64_t k, int64_t D, int64_t F);

// out[m, :] = sum_j weights[m, j] * Expert_{ids[m, j]}(x[m, :]) for m < M, j < k (out ldo apart),
// Expert_e(u) = down_e @ (gelu_tanh(gate_e @ u) * (up_e @ u)), where gate_up holds E matrices
// [2F, D] (rows [0, F) gate_e, [F, 2F) up_e) and down E matrices [D, F]; x rows ldx apart, ids in
// [0, E) (a token may name an expert twice: both terms count). Each expert runs once, on the rows
// of all the tokens routed to it, gathered together (a counting sort of the (token, slot) pairs by
// expert); experts no token chose are never read. Every product goes through cpu::linear or
// cpu::linear_quantized on the expert's rows in place, split into tasks of weight rows, all the
// experts' tasks in one parallel region per projection (gate and up rows of a block together, with
// geglu applied while they are in cache). A token's k terms are added in slot order after all
// experts ran, so the result does not depend on the thread count. It can depend on how many
// tokens share an expert (up to 4 rows take the matrix-vector path, more the blocked GEMM), as
// cpu::linear's result depends on M. workspace: moe_workspace_floats(M, k, D, F) floats, 64-byte
// aligned, or null to allocate them for this call. x, out and workspace must not overlap.
void moe_experts(const float* x, int64_t ldx, int64_t M, const int32_t* ids, const float* weights,
                 int64_t k, const ExpertStack& gate_up, const ExpertStack& down, float* out,
                 int64_t ldo, float* workspace = nullptr);

}  // namespace gemmacpp::cpu
