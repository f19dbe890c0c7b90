// Griffin's real-gated linear recurrent unit (RG-LRU), fused: the gates' sigmoids, the recurrence
// weight a, the sqrt(1 - a^2) input normalisation and the scan over time in one pass over the
// data. Sequential in time, vectorised across the width, parallel across the batch and fixed
// chunks of the width (every lane is computed alone, so results do not depend on the split or on
// the thread count).
#pragma once

#include <cstdint>

#include "csrc/core/rg_lru_args.h"

namespace gemmacpp::cpu {

using RgLruArgs = gemmacpp::RgLruArgs;  // csrc/core/rg_lru_args.h

// Per step: i = sigmoid(gate_x), r = sigmoid(gate_a), log a = -c r softplus(a_param),
// h_t = a h_{t-1} + sqrt(1 - a^2) (i x_t); at a reset a = 0 and the sqrt factor is 1. The state
// stays float32 between steps; y is rounded to dtype.
void rg_lru(const RgLruArgs& a);

}  // namespace gemmacpp::cpu
