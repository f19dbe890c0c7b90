#include "csrc/ops/rms_norm.h"

#include <cmath>

#include "csrc/cpu/rms_norm.h"
#include "csrc/ops/common.h"
#ifdef GEMMACPP_WITH_CUDA
#include "csrc/cuda/rms_norm.h"
#endif

namespace gemmacpp::ops {

Tensor rms_norm(const TensorView& x_in, const TensorView& w_in, float eps, bool unit_offset,
                const TensorView* out) {
  check_float("rms_norm", "x", x_in);
  check_float("rms_norm", "weight", w_in);
  GC_CHECK(x_in.ndim() >= 1, ValueError, "rms_norm: x must have at least 1 dimension [..., D], ",
           "got shape ", x_in.shape_str());
  const int64_t d = x_in.size(-1);
  check_shape("rms_norm", "weight", w_in, {d});
  check_same_device("rms_norm", "weight", w_in, "x", x_in);
  GC_CHECK(std::isfinite(eps) && eps >= 0, ValueError,
           "rms_norm: eps must be a finite number >= 0, got ", eps);
  if (x_in.device.is_cpu()) {
    Tensor keep_x, keep_w;
    const TensorView& x = dense(x_in, keep_x);
    const TensorView& w = dense(w_in, keep_w);
    Output y("rms_norm", out, x.dtype, x.shape, x.device);
    const int64_t rows = d == 0 ? 0 : x.numel() / d;
    cpu::rms_norm(x.dtype, x.data, y.view().data, rows, d, w.dtype, w.data, eps, unit_offset);
    return y.finish();
  }
#ifdef GEMMACPP_WITH_CUDA
  // No device-side copy of strided views yet: the CUDA path takes dense tensors only.
  GC_CHECK(x_in.is_contiguous(), ValueError, "rms_norm: x on ", x_in.device.str(),
           " must be contiguous");
  GC_CHECK(w_in.is_contiguous(), ValueError, "rms_norm: weight on ", w_in.device.str(),
           " must be contiguous");
  GC_CHECK(out == nullptr || out->is_contiguous(), ValueError, "rms_norm: out on ",
           x_in.device.str(), " must be contiguous");
  Output y("rms_norm", out, x_in.dtype, x_in.shape, x_in.device);
  const int64_t rows = d == 0 ? 0 : x_in.numel() / d;
  cuda::rms_norm(x_in.dtype, x_in.data, y.view().data, rows, d, w_in.dtype, w_in.data, eps,
                 unit_offset, x_in.device.index);
  return y.finish();
#else
  throw ValueError("rms_norm: x is on " + x_in.device.str() +
                   " but this build has no CUDA support");
#endif
}

}  // namespace gemmacpp::ops
