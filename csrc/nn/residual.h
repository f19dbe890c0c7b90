// The residual stream of a forward's packed rows, and the two work buffers every layer uses: a
// block reads its normalised input from h and writes its output to out, which the layer adds to x.
#pragma once

#include <cstdint>

#include "csrc/nn/forward.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {

struct Residual {
  float* x;    // [M, d]: the stream
  float* h;    // [M, d]: a block's input
  float* out;  // [M, d]: a block's output
  int64_t d;

  // x += out, then the stream is offered at `site` (hook_resid_mid, hook_resid_post).
  void add_out(const Forward& f, int site) const {
    ops::dispatch::add_into(f.device, x, out, f.rows() * d);
    f.offer(site, x, {d});
  }
};

}  // namespace gemmacpp::nn
