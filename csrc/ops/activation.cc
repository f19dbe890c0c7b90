#include "csrc/ops/activation.h"

#include "csrc/cpu/activation.h"
#include "csrc/ops/common.h"

namespace gemmacpp::ops {

Tensor gelu_tanh(const TensorView& x_in, const TensorView* out) {
  check_float("gelu_tanh", "x", x_in);
  GC_CHECK(x_in.device.is_cpu(), NotImplementedError, "gelu_tanh: x is on ", x_in.device.str(),
           "; only the CPU has a gelu_tanh kernel");
  Tensor keep;
  const TensorView& x = dense(x_in, keep);
  Output y("gelu_tanh", out, x.dtype, x.shape, x.device);
  cpu::gelu_tanh(x.dtype, x.data, y.view().data, x.numel());
  return y.finish();
}

Tensor geglu(const TensorView& gate_in, const TensorView& up_in, const TensorView* out) {
  check_float("geglu", "gate", gate_in);
  check_float("geglu", "up", up_in);
  check_same_dtype("geglu", "up", up_in, "gate", gate_in);
  GC_CHECK(up_in.shape == gate_in.shape, ValueError, "geglu: up has shape ", up_in.shape_str(),
           " but gate has shape ", gate_in.shape_str(), "; they must match (no broadcasting)");
  check_same_device("geglu", "up", up_in, "gate", gate_in);
  GC_CHECK(gate_in.device.is_cpu(), NotImplementedError, "geglu: gate is on ",
           gate_in.device.str(), "; only the CPU has a geglu kernel");
  Tensor keep_gate, keep_up;
  const TensorView& gate = dense(gate_in, keep_gate);
  const TensorView& up = dense(up_in, keep_up);
  Output y("geglu", out, gate.dtype, gate.shape, gate.device);
  cpu::geglu(gate.dtype, gate.data, up.data, y.view().data, gate.numel());
  return y.finish();
}

}  // namespace gemmacpp::ops
