// x += y elementwise on float32: the residual adds of the model forwards. Plain C++ (the
// compiler vectorises it; an add has one rounding whatever the vector width, so every target gives
// the same bits).
#pragma once

#include <cstdint>

namespace gemmacpp::cpu {

// Over all threads when n is large (an 896 px image's residual stream is 4.7M floats, too much for
// one core's bandwidth); a decode step's is one chunk, run on the calling thread.
void add_into(float* x, const float* y, int64_t n);

}  // namespace gemmacpp::cpu
