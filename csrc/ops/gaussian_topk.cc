#include "csrc/ops/gaussian_topk.h"

#include <cmath>

#include "csrc/cpu/gaussian_topk.h"
#include "csrc/ops/common.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::ops {

Tensor gaussian_topk(const TensorView& x_in, float z, const TensorView* out) {
  check_float("gaussian_topk", "x", x_in);
  GC_CHECK(x_in.ndim() >= 1, ValueError, "gaussian_topk: x must have at least 1 dimension [..., F], ",
           "got shape ", x_in.shape_str());
  GC_CHECK(std::isfinite(z), ValueError, "gaussian_topk: z must be a finite number, got ", z);
  if (!x_in.device.is_cpu()) {
#ifdef GEMMACPP_WITH_CUDA
    // No device-side copy of strided views yet: the CUDA path takes dense tensors only.
    GC_CHECK(x_in.is_contiguous(), ValueError, "gaussian_topk: x on ", x_in.device.str(), " must be contiguous");
    GC_CHECK(out == nullptr || out->is_contiguous(), ValueError, "gaussian_topk: out on ", x_in.device.str(),
             " must be contiguous");
    Output y("gaussian_topk", out, x_in.dtype, x_in.shape, x_in.device);
    const int64_t F = x_in.size(-1);
    ops::dispatch::gaussian_topk(x_in.device, x_in.dtype, x_in.data, y.view().data, F == 0 ? 0 : x_in.numel() / F, F,
                                 z);
    return y.finish();
#else
    throw ValueError("gaussian_topk: x is on " + x_in.device.str() + " but this build has no CUDA support");
#endif
  }
  Tensor keep;
  const TensorView& x = dense(x_in, keep);
  Output y("gaussian_topk", out, x.dtype, x.shape, x.device);
  const int64_t F = x.size(-1);
  cpu::gaussian_topk(x.dtype, x.data, y.view().data, F == 0 ? 0 : x.numel() / F, F, z);
  return y.finish();
}

}  // namespace gemmacpp::ops
