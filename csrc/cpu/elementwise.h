// Plain elementwise updates of a residual stream on float32: x += y, x *= s, a mean of parts, a
// per-column scale. Plain C++ (the
// compiler vectorises it; each element has one rounding whatever the vector width, so every target
// gives the same bits), over all threads when the stream is large (an 896 px image's is 4.7M
// floats, too much for one core's bandwidth); a decode step's is one chunk, run on the calling
// thread.
#pragma once

#include <cstdint>

namespace gemmacpp::cpu {

void add_into(float* x, const float* y, int64_t n);  // x += y
void scale_into(float* x, float s, int64_t n);       // x *= s
// out[i] = (x[0][i] + ... + x[parts - 1][i]) / parts, summed in order; part p at x + p * n.
void mean_of_parts(const float* x, int64_t parts, int64_t n, float* out);
// out[r, j] = x[r, j] * scale[j] over rows of d (out may be x).
void scale_columns(const float* x, const float* scale, int64_t rows, int64_t d, float* out);

}  // namespace gemmacpp::cpu
