// The normalisations the families use, over rows of width d: RMSNorm (Gemma's scales by 1 + w as
// stored in HF checkpoints; llama.cpp's GGUF files store 1 + w, read with unit_offset off) and
// LayerNorm with a bias (SigLIP). Statistics in float32. An unbound norm (a family without that
// norm in this place, as Gemma 1 without post-norms) is a no-op the recipe skips.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "csrc/core/tensor.h"
#include "csrc/io/weight_binder.h"

namespace gemmacpp::nn {

class RMSNorm {
 public:
  RMSNorm() = default;
  RMSNorm(const WeightBinder& w, const std::string& name, int64_t d, double eps, bool unit_offset);
  // x / rms(x) alone (a norm "without scale": the newer families' v norm).
  static RMSNorm weightless(int64_t d, double eps);
  // x / rms(x) * w with float32 weights of its own (w used as given, no 1 +).
  static RMSNorm with_weight(std::vector<float> w, double eps);
  bool bound() const { return w_ != nullptr || !own_.empty(); }
  // rows of d floats from in to out (may alias).
  void operator()(Device device, const float* in, float* out, int64_t rows) const;

 private:
  const WeightTensor* w_ = nullptr;
  std::vector<float> own_;  // a weight of its own: ones for the weightless norm (x 1 changes no bit)
  float eps_ = 0;
  bool unit_offset_ = true;
};

class LayerNorm {
 public:
  LayerNorm() = default;
  // `name`.weight and `name`.bias, both [d] of one float dtype.
  LayerNorm(const WeightBinder& w, const std::string& name, int64_t d, double eps);
  void operator()(Device device, const float* in, float* out, int64_t rows) const;

 private:
  const WeightTensor *w_ = nullptr, *b_ = nullptr;
  float eps_ = 0;
};

}  // namespace gemmacpp::nn
