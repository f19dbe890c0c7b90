#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/layer_norm.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(layer_norm) {
  m.def("layer_norm", [](py::handle x, py::handle weight, py::handle bias, float eps, py::handle out) {
    auto xa = import_tensor(x, "layer_norm: x");
    auto wa = import_tensor(weight, "layer_norm: weight");
    auto ba = import_optional(bias, "layer_norm: bias");
    auto oa = import_optional(out, "layer_norm: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::layer_norm(xa.view, wa.view, view_or_null(ba), eps, view_or_null(oa));
    }
    return wrap(std::move(r));
  }, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("eps"), py::arg("out") = py::none());
}

}  // namespace gemmacpp::bindings
