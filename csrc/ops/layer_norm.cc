#include "csrc/ops/layer_norm.h"

#include <cmath>

#include "csrc/cpu/layer_norm.h"
#include "csrc/ops/common.h"

namespace gemmacpp::ops {

Tensor layer_norm(const TensorView& x_in, const TensorView& w_in, const TensorView* b_in, float eps,
                  const TensorView* out) {
  check_float("layer_norm", "x", x_in);
  check_float("layer_norm", "weight", w_in);
  GC_CHECK(x_in.ndim() >= 1, ValueError, "layer_norm: x must have at least 1 dimension [..., D], ",
           "got shape ", x_in.shape_str());
  const int64_t d = x_in.size(-1);
  check_shape("layer_norm", "weight", w_in, {d});
  check_same_device("layer_norm", "weight", w_in, "x", x_in);
  if (b_in) {
    check_float("layer_norm", "bias", *b_in);
    check_shape("layer_norm", "bias", *b_in, {d});
    check_same_dtype("layer_norm", "bias", *b_in, "weight", w_in);
    check_same_device("layer_norm", "bias", *b_in, "x", x_in);
  }
  GC_CHECK(std::isfinite(eps) && eps >= 0, ValueError,
           "layer_norm: eps must be a finite number >= 0, got ", eps);
  GC_CHECK(x_in.device.is_cpu(), ValueError, "layer_norm: x is on ", x_in.device.str(),
           "; layer_norm runs on the CPU only so far");
  Tensor keep_x, keep_w, keep_b;
  const TensorView& x = dense(x_in, keep_x);
  const TensorView& w = dense(w_in, keep_w);
  const TensorView* b = b_in ? &dense(*b_in, keep_b) : nullptr;
  Output y("layer_norm", out, x.dtype, x.shape, x.device);
  const int64_t rows = d == 0 ? 0 : x.numel() / d;
  cpu::layer_norm(x.dtype, x.data, y.view().data, rows, d, w.dtype, w.data, b ? b->data : nullptr, eps);
  return y.finish();
}

}  // namespace gemmacpp::ops
