// Causal depthwise convolution along time (Griffin's temporal Conv1D): each channel of the width
// has its own K taps. Outputs do not depend on each other, so the work splits into fixed blocks
// of (batch, time, width); each output sums its taps in one fixed order, whatever the split.
#pragma once

#include <cstdint>

#include "csrc/core/conv1d_temporal_args.h"

namespace gemmacpp::cpu {

using Conv1dTemporalArgs = gemmacpp::Conv1dTemporalArgs;  // csrc/core/conv1d_temporal_args.h

// y[b, t] = bias + sum_k weight[k] * u[b, t + k], u = concat(state, x) along time (k ascending,
// float32). A reset at time r hides every input before r from the outputs at r and after, as if
// the segment started with a zero state.
void conv1d_temporal(const Conv1dTemporalArgs& a);

}  // namespace gemmacpp::cpu
