#pragma once
#include <cstdint>

namespace gemmacpp::cpu {
// For each of the M rows of logits [M, V] (float32, row stride ld): logp[m] = logits[m, target[m]]
// - logsumexp(logits[m]), in float64, and argmax[m] = the first index of the row's largest value
// (of its first NaN, if any, as NumPy's argmax). Rows are split into fixed chunks of the
// vocabulary, so the result does not depend on the number of threads.
void token_logprobs(const float* logits, int64_t ld, int64_t M, int64_t V, const int64_t* target,
                    double* logp, int64_t* argmax);
}  // namespace gemmacpp::cpu
