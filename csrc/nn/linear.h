// A projection x W^T (+ b) by a bound weight: float32, float16 or bfloat16 matrices, or GGML
// blocks read in place; biases kept as float32 (the GEMM's epilogue reads them so).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "csrc/core/activations.h"
#include "csrc/core/qtype.h"
#include "csrc/core/tensor.h"
#include "csrc/io/weight_binder.h"

namespace gemmacpp::nn {

// While one lives on this thread, the Linears constructed with quantized weights round their
// input to int8 per block before the products (gc.load's activations="int8"): an option of the
// model's construction, fixed in each Linear, like MappedFile::ReadIntoMemory for the weights.
class LinearActivationsScope {
 public:
  explicit LinearActivationsScope(Activations a);
  ~LinearActivationsScope();
  LinearActivationsScope(const LinearActivationsScope&) = delete;
  LinearActivationsScope& operator=(const LinearActivationsScope&) = delete;

 private:
  Activations previous_;
};

class Linear {
 public:
  Linear() = default;
  // The weight `name` ([out, in]) and, with bias, `bias_name` ([out]).
  Linear(const WeightBinder& w, const std::string& name, int64_t out, int64_t in,
         const std::string& bias_name = "");
  // A weight bound elsewhere (the tied unembedding reads the embedding table).
  explicit Linear(const WeightTensor& weight);

  // The first `out` rows and `in` columns of this weight, read in place (a MatFormer slice):
  // of a quantized weight, whole blocks of columns (NotImplementedError otherwise).
  Linear prefix(int64_t out, int64_t in) const;

  bool bound() const { return w_ != nullptr; }
  int64_t out_features() const { return out_ ? out_ : w_->shape[0]; }
  int64_t in_features() const { return in_ ? in_ : w_->shape[1]; }
  const WeightTensor& weight() const { return *w_; }

  // out[M, N] = x[M, K] W^T (+ b); rows of x and out strided by ldx and ldo (0: dense).
  void operator()(Device device, const float* x, int64_t M, float* out, int64_t ldx = 0,
                  int64_t ldo = 0) const;

 private:
  const WeightTensor* w_ = nullptr;
  QType qtype_ = QType::kQ8_0;  // when the weight is quantized
  Activations activations_ = Activations::kFloat32;  // of quantized products
  std::vector<float> bias_;
  int64_t out_ = 0, in_ = 0;  // a prefix of the stored rows / columns; 0: all
};

}  // namespace gemmacpp::nn
