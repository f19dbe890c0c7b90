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
  Tensor keep;
  const TensorView& x = dense(x_in, keep);
  Output y("softcap", out, x.dtype, x.shape, x.device);
  if (x.device.is_cpu()) {
    cpu::softcap(x.dtype, x.data, y.view().data, x.numel(), cap);
  } else {
#ifdef GEMMACPP_WITH_CUDA
    cuda::softcap(x.dtype, x.data, y.view().data, x.numel(), cap, x.device.index);
#else
    throw ValueError("softcap: x is on " + x.device.str() + " but this build has no CUDA support");
#endif
  }
  return y.finish();
}

}  // namespace gemmacpp::ops
