#include "csrc/models/model_ops.h"

#include <cstring>

#include "csrc/core/error.h"
#include "csrc/cpu/linear.h"

namespace gemmacpp::model_ops {
namespace {

float element_f32(DType dt, const uint8_t* p, int64_t i) {
  if (dt == DType::kF32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return dt == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

}  // namespace

const WeightTensor& dense_weight(const WeightFile& f, const std::string& name,
                                 const std::vector<int64_t>& shape) {
  const WeightTensor* t = f.find(name);
  GC_CHECK(t, ValueError, "'", f.path, "' has no tensor '", name, "'");
  GC_CHECK(t->shape == shape, ValueError, "'", f.path, "': tensor '", name, "' has shape ",
           shape_string(t->shape), ", the config needs ", shape_string(shape));
  GC_CHECK(!t->quantized && t->supported, NotImplementedError, "'", f.path, "': tensor '", name,
           "' is stored as ", t->type_name(), "; this model reads float32, float16 or bfloat16 only");
  GC_CHECK(is_float_activation(t->dtype), TypeError, "'", f.path, "': tensor '", name,
           "' has dtype ", dtype_name(t->dtype), "; expected float32, float16 or bfloat16");
  return *t;
}

std::vector<float> to_f32(const WeightTensor& t) {
  std::vector<float> out(size_t(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = element_f32(t.dtype, t.data, int64_t(i));
  return out;
}

void linear(const float* x, int64_t M, const WeightTensor& w, const float* bias, float* out) {
  const int64_t N = w.shape[0], K = w.shape[1];
  cpu::linear(x, K, M, K, w.dtype, w.data, K, N, bias, out, N);
}

void embed_rows(const WeightTensor& e, const int64_t* tokens, int64_t M, float scale, float* x) {
  const int64_t d = e.shape[1];
  for (int64_t m = 0; m < M; ++m) {
    const int64_t base = tokens[m] * d;
    for (int64_t j = 0; j < d; ++j) x[m * d + j] = element_f32(e.dtype, e.data, base + j) * scale;
  }
}

void add_into(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace gemmacpp::model_ops
