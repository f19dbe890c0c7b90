#include "csrc/ops/softcap.h"

#include <cmath>

#include "csrc/cpu/softcap.h"
#include "csrc/ops/common.h"
#ifdef GEMMACPP_WITH_CUDA
#include "csrc/cuda/softcap.h"
#endif

namespace gemmacpp::ops {

Tensor softcap(const TensorView& x_in, float cap, const TensorView* out) {
  check_float("softcap", "x", x_in);
  GC_CHECK(std::isfinite(cap) && cap > 0, ValueError, "softcap: cap must be a positive number, got ",
           cap);
  if (x_in.device.is_cpu()) {
    Tensor keep;
    const TensorView& x = dense(x_in, keep);
    Output y("softcap", out, x.dtype, x.shape, x.device);
    cpu::softcap(x.dtype, x.data, y.view().data, x.numel(), cap);
    return y.finish();
  }
#ifdef GEMMACPP_WITH_CUDA
  // No device-side copy of strided views yet: the CUDA path takes dense tensors only.
  GC_CHECK(x_in.is_contiguous(), ValueError, "softcap: x on ", x_in.device.str(),
           " must be contiguous");
  GC_CHECK(out == nullptr || out->is_contiguous(), ValueError, "softcap: out on ",
           x_in.device.str(), " must be contiguous");
  Output y("softcap", out, x_in.dtype, x_in.shape, x_in.device);
  cuda::softcap(x_in.dtype, x_in.data, y.view().data, x_in.numel(), cap, x_in.device.index);
  return y.finish();
#else
  throw ValueError("softcap: x is on " + x_in.device.str() + " but this build has no CUDA support");
#endif
}

}  // namespace gemmacpp::ops
