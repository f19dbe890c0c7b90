#include "csrc/ops/activation.h"

#include "csrc/cpu/activation.h"
#include "csrc/ops/common.h"
#ifdef GEMMACPP_WITH_CUDA
#include "csrc/cuda/activation.h"
#endif

namespace gemmacpp::ops {

Tensor gelu_tanh(const TensorView& x_in, const TensorView* out) {
  check_float("gelu_tanh", "x", x_in);
  if (x_in.device.is_cpu()) {
    Tensor keep;
    const TensorView& x = dense(x_in, keep);
    Output y("gelu_tanh", out, x.dtype, x.shape, x.device);
    cpu::gelu_tanh(x.dtype, x.data, y.view().data, x.numel());
    return y.finish();
  }
#ifdef GEMMACPP_WITH_CUDA
  // No device-side copy of strided views yet: the CUDA path takes dense tensors only.
  GC_CHECK(x_in.is_contiguous(), ValueError, "gelu_tanh: x on ", x_in.device.str(),
           " must be contiguous");
  GC_CHECK(out == nullptr || out->is_contiguous(), ValueError, "gelu_tanh: out on ",
           x_in.device.str(), " must be contiguous");
  Output y("gelu_tanh", out, x_in.dtype, x_in.shape, x_in.device);
  cuda::gelu_tanh(x_in.dtype, x_in.data, y.view().data, x_in.numel(), x_in.device.index);
  return y.finish();
#else
  throw ValueError("gelu_tanh: x is on " + x_in.device.str() +
                   " but this build has no CUDA support");
#endif
}

Tensor geglu(const TensorView& gate_in, const TensorView& up_in, const TensorView* out) {
  check_float("geglu", "gate", gate_in);
  check_float("geglu", "up", up_in);
  check_same_dtype("geglu", "up", up_in, "gate", gate_in);
  GC_CHECK(up_in.shape == gate_in.shape, ValueError, "geglu: up has shape ", up_in.shape_str(),
           " but gate has shape ", gate_in.shape_str(), "; they must match (no broadcasting)");
  check_same_device("geglu", "up", up_in, "gate", gate_in);
  if (gate_in.device.is_cpu()) {
    Tensor keep_gate, keep_up;
    const TensorView& gate = dense(gate_in, keep_gate);
    const TensorView& up = dense(up_in, keep_up);
    Output y("geglu", out, gate.dtype, gate.shape, gate.device);
    cpu::geglu(gate.dtype, gate.data, up.data, y.view().data, gate.numel());
    return y.finish();
  }
#ifdef GEMMACPP_WITH_CUDA
  // No device-side copy of strided views yet: the CUDA path takes dense tensors only.
  GC_CHECK(gate_in.is_contiguous(), ValueError, "geglu: gate on ", gate_in.device.str(),
           " must be contiguous");
  GC_CHECK(up_in.is_contiguous(), ValueError, "geglu: up on ", up_in.device.str(),
           " must be contiguous");
  GC_CHECK(out == nullptr || out->is_contiguous(), ValueError, "geglu: out on ",
           gate_in.device.str(), " must be contiguous");
  Output y("geglu", out, gate_in.dtype, gate_in.shape, gate_in.device);
  cuda::geglu(gate_in.dtype, gate_in.data, up_in.data, y.view().data, gate_in.numel(),
              gate_in.device.index);
  return y.finish();
#else
  throw ValueError("geglu: gate is on " + gate_in.device.str() +
                   " but this build has no CUDA support");
#endif
}

}  // namespace gemmacpp::ops
