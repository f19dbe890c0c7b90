// Image patch layouts of a ViT: images cut into patch rows (im2col for a conv whose kernel equals
// its stride, done as one matrix product afterwards), and patch grids average-pooled to fewer
// tokens (Gemma 3's projector). Pure data movement and sums in a fixed order, over all threads.
#pragma once

#include <cstdint>

namespace gemmacpp::cpu {

// pixels [N, C, S, S] float32 -> cols [N * G * G, C * ps * ps] with G = S / ps: one row per
// patch, columns in the conv weight's (channel, y, x) order.
void image_patches(const float* pixels, int64_t N, int64_t C, int64_t S, int64_t ps, float* cols);

// features [N, G * G, d] (a G x G grid per image) -> out [N, T * T, d], each output the mean of a
// (G / T) x (G / T) block; T divides G.
void pool_patch_grid(const float* features, int64_t N, int64_t G, int64_t d, int64_t T, float* out);

}  // namespace gemmacpp::cpu
