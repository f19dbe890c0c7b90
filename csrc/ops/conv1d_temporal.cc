#include "csrc/ops/conv1d_temporal.h"

#include <cstring>
#include <vector>

#include "csrc/cpu/conv1d_temporal.h"
#include "csrc/ops/common.h"

namespace gemmacpp::ops {
namespace {

// The elements of a small float tensor (weights, bias) as float32, in C order.
std::vector<float> f32_elements(const TensorView& t_in) {
  Tensor keep;
  const TensorView& t = dense(t_in, keep);
  std::vector<float> out(size_t(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    uint16_t h = 0;
    if (t.dtype != DType::kF32) std::memcpy(&h, t.ptr<const char>() + 2 * i, 2);
    out[i] = t.dtype == DType::kF32 ? t.ptr<const float>()[i]
             : t.dtype == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
  return out;
}

}  // namespace

Conv1dTemporalResult conv1d_temporal(const TensorView& x_in, const TensorView& w_in,
                                     const TensorView* bias_in, const TensorView* state_in,
                                     const TensorView* reset_in) {
  const char* op = "conv1d_temporal";
  check_float(op, "x", x_in);
  check_rank(op, "x", x_in, 3, "[B, T, W]");
  const int64_t B = x_in.size(0), T = x_in.size(1), W = x_in.size(2);
  check_float(op, "weight", w_in);
  check_rank(op, "weight", w_in, 2, "[K, W]");
  const int64_t K = w_in.size(0);
  GC_CHECK(K >= 1, ValueError, "conv1d_temporal: weight must have at least one tap (K >= 1), got shape ",
           w_in.shape_str());
  check_shape(op, "weight", w_in, {K, W});
  check_same_device(op, "weight", w_in, "x", x_in);
  if (bias_in) {
    check_float(op, "bias", *bias_in);
    check_shape(op, "bias", *bias_in, {W});
    check_same_device(op, "bias", *bias_in, "x", x_in);
  }
  if (state_in) {
    check_same_dtype(op, "state", *state_in, "x", x_in);
    check_shape(op, "state", *state_in, {B, K - 1, W});
    check_same_device(op, "state", *state_in, "x", x_in);
  }
  if (reset_in) {
    GC_CHECK(reset_in->dtype == DType::kBool, TypeError, "conv1d_temporal: reset must be bool, got ",
             dtype_name(reset_in->dtype));
    check_shape(op, "reset", *reset_in, {B, T});
    check_same_device(op, "reset", *reset_in, "x", x_in);
  }
  GC_CHECK(x_in.device.is_cpu(), NotImplementedError, "conv1d_temporal: x is on ",
           x_in.device.str(), "; only the CPU has a conv1d_temporal kernel");

  Tensor keep_x, keep_state, keep_reset;
  const TensorView& x = dense(x_in, keep_x);
  const std::vector<float> weight = f32_elements(w_in);
  const std::vector<float> bias = bias_in ? f32_elements(*bias_in) : std::vector<float>();

  Conv1dTemporalResult r;
  r.y = Tensor::empty(x.dtype, x.shape, x.device);
  r.new_state = Tensor::empty(x.dtype, {B, K - 1, W}, x.device);
  cpu::Conv1dTemporalArgs a;
  a.dtype = x.dtype;
  a.x = x.data;
  a.state = state_in ? dense(*state_in, keep_state).data : nullptr;
  a.weight = weight.data();
  a.bias = bias_in ? bias.data() : nullptr;
  a.reset = reset_in ? dense(*reset_in, keep_reset).ptr<uint8_t>() : nullptr;
  a.y = r.y.view().data;
  a.new_state = r.new_state.view().data;
  a.B = B; a.T = T; a.W = W; a.K = K;
  cpu::conv1d_temporal(a);
  return r;
}

}  // namespace gemmacpp::ops
