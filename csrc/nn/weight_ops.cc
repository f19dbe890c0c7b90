#include "csrc/nn/weight_ops.h"

#include <cstring>

#include "csrc/core/error.h"
#include "csrc/core/threads.h"
#include "csrc/cpu/linear.h"
#include "csrc/cpu/quant.h"
#include "csrc/cpu/quant_blocks.h"

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

cpu::QType qtype_of(const WeightTensor& w) {
  cpu::QType q = cpu::QType::kQ8_0;
  parse_qtype(w.type_name(), &q);  // checked when the weight was bound
  return q;
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
  if (w.quantized) {
    cpu::linear_quantized(x, K, M, K, qtype_of(w), w.data, N, bias, out, N);
    return;
  }
  cpu::linear(x, K, M, K, w.dtype, w.data, K, N, bias, out, N);
}

void embed_rows(const WeightTensor& e, const int64_t* tokens, int64_t M, float scale, float* x) {
  const int64_t d = e.shape[1];
  for (int64_t m = 0; m < M; ++m) {
    float* row = x + m * d;
    if (e.quantized) {
      const uint64_t row_bytes = uint64_t(e.nbytes / uint64_t(e.shape[0]));
      cpu::dequantize(qtype_of(e), e.data + uint64_t(tokens[m]) * row_bytes, 1, d, row);
      for (int64_t j = 0; j < d; ++j) row[j] *= scale;
      continue;
    }
    const int64_t base = tokens[m] * d;
    for (int64_t j = 0; j < d; ++j) row[j] = element_f32(e.dtype, e.data, base + j) * scale;
  }
}

void add_into(float* x, const float* y, int64_t n) {
  // Over all threads: a residual stream can be large (an 896 px image's is 4.7M floats, too much
  // for one core's bandwidth); a decode step's is one chunk, run on the calling thread.
  parallel_chunks(n, int64_t(1) << 16, [&](int64_t begin, int64_t len) {
    for (int64_t i = begin; i < begin + len; ++i) x[i] += y[i];
  });
}

}  // namespace gemmacpp::model_ops
