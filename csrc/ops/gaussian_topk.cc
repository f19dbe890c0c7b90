#include "csrc/ops/gaussian_topk.h"

#include <cmath>

#include "csrc/cpu/gaussian_topk.h"
#include "csrc/ops/common.h"

namespace gemmacpp::ops {

Tensor gaussian_topk(const TensorView& x_in, float z, const TensorView* out) {
  check_float("gaussian_topk", "x", x_in);
  GC_CHECK(x_in.ndim() >= 1, ValueError, "gaussian_topk: x must have at least 1 dimension [..., F], ",
           "got shape ", x_in.shape_str());
  GC_CHECK(std::isfinite(z), ValueError, "gaussian_topk: z must be a finite number, got ", z);
  GC_CHECK(x_in.device.is_cpu(), ValueError, "gaussian_topk: x is on ", x_in.device.str(),
           "; gaussian_topk runs on the CPU only so far");
  Tensor keep;
  const TensorView& x = dense(x_in, keep);
  Output y("gaussian_topk", out, x.dtype, x.shape, x.device);
  const int64_t F = x.size(-1);
  cpu::gaussian_topk(x.dtype, x.data, y.view().data, F == 0 ? 0 : x.numel() / F, F, z);
  return y.finish();
}

}  // namespace gemmacpp::ops
