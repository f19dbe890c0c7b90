#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/conv1d_temporal.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(conv1d_temporal) {
  m.def("conv1d_temporal", [](py::handle x, py::handle weight, py::handle bias, py::handle state,
                              py::handle reset) {
    auto xa = import_tensor(x, "conv1d_temporal: x");
    auto wa = import_tensor(weight, "conv1d_temporal: weight");
    auto ba = import_optional(bias, "conv1d_temporal: bias");
    auto sa = import_optional(state, "conv1d_temporal: state");
    auto ra = import_optional(reset, "conv1d_temporal: reset");
    ops::Conv1dTemporalResult r;
    {
      py::gil_scoped_release nogil;
      r = ops::conv1d_temporal(xa.view, wa.view, view_or_null(ba), view_or_null(sa), view_or_null(ra));
    }
    return py::make_tuple(wrap(std::move(r.y)), wrap(std::move(r.new_state)));
  }, py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("state") = py::none(),
     py::arg("reset") = py::none(), "(y [B, T, W], new_state [B, K-1, W])");
}

}  // namespace gemmacpp::bindings
