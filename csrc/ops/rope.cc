#include "csrc/ops/rope.h"

#include <cmath>

#include "csrc/cpu/rope.h"
#include "csrc/ops/common.h"
#ifdef GEMMACPP_WITH_CUDA
#include "csrc/cuda/rope.h"
#endif

namespace gemmacpp::ops {

Tensor rope(const TensorView& x_in, const TensorView& pos_in, double base, double scale,
            std::optional<int64_t> rotary_dim, std::optional<int64_t> rotated_pairs,
            const TensorView* out) {
  check_float("rope", "x", x_in);
  check_rank("rope", "x", x_in, 4, "[B, T, H, D]");
  const int64_t B = x_in.size(0), T = x_in.size(1), H = x_in.size(2), D = x_in.size(3);
  GC_CHECK(pos_in.dtype == DType::kI32 || pos_in.dtype == DType::kI64, TypeError,
           "rope: positions must be int32 or int64, got ", dtype_name(pos_in.dtype));
  const bool per_batch = pos_in.ndim() == 2;
  GC_CHECK((pos_in.ndim() == 1 && pos_in.size(0) == T) ||
               (per_batch && pos_in.size(0) == B && pos_in.size(1) == T),
           ValueError, "rope: positions must have shape [T] = [", T, "] or [B, T] = [", B, ", ",
           T, "] for x of shape ", x_in.shape_str(), ", got ", pos_in.shape_str());
  const int64_t R = rotary_dim.value_or(D);
  GC_CHECK(R >= 2 && R <= D && R % 2 == 0, ValueError, "rope: rotary_dim must be even and in [2, ",
           "D = ", D, "]", rotary_dim ? "" : " (it defaults to D)", ", got ", R);
  const int64_t pairs = rotated_pairs.value_or(R / 2);
  GC_CHECK(pairs >= 0 && pairs <= R / 2, ValueError, "rope: rotated_pairs must be in [0, rotary_dim / 2 = ",
           R / 2, "], got ", pairs);
  GC_CHECK(std::isfinite(base) && base > 0, ValueError, "rope: base must be a positive number, got ",
           base);
  GC_CHECK(std::isfinite(scale) && scale > 0, ValueError,
           "rope: scale must be a positive number, got ", scale);
  check_same_device("rope", "positions", pos_in, "x", x_in);
  if (x_in.device.is_cpu()) {
    Tensor keep_x, keep_pos;
    const TensorView& x = dense(x_in, keep_x);
    const TensorView& pos = dense(pos_in, keep_pos);
    Output y("rope", out, x.dtype, x.shape, x.device);
    cpu::rope(x.dtype, x.data, y.view().data, B, T, H, D, pos.dtype, pos.data, per_batch, base,
              scale, R, pairs);
    return y.finish();
  }
#ifdef GEMMACPP_WITH_CUDA
  // No device-side copy of strided views yet: the CUDA path takes dense tensors only.
  GC_CHECK(x_in.is_contiguous(), ValueError, "rope: x on ", x_in.device.str(),
           " must be contiguous");
  GC_CHECK(pos_in.is_contiguous(), ValueError, "rope: positions on ", pos_in.device.str(),
           " must be contiguous");
  GC_CHECK(out == nullptr || out->is_contiguous(), ValueError, "rope: out on ",
           x_in.device.str(), " must be contiguous");
  Output y("rope", out, x_in.dtype, x_in.shape, x_in.device);
  cuda::rope(x_in.dtype, x_in.data, y.view().data, B, T, H, D, pos_in.dtype, pos_in.data,
             per_batch, base, scale, R, pairs, x_in.device.index);
  return y.finish();
#else
  throw ValueError("rope: x is on " + x_in.device.str() + " but this build has no CUDA support");
#endif
}

}  // namespace gemmacpp::ops
