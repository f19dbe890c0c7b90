#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/activation.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(activation) {
  m.def("gelu_tanh", [](py::handle x, py::handle out) {
    auto xa = import_tensor(x, "gelu_tanh: x");
    auto oa = import_optional(out, "gelu_tanh: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::gelu_tanh(xa.view, view_or_null(oa));
    }
    return wrap(std::move(r));
  }, py::arg("x"), py::arg("out") = py::none());

  m.def("geglu", [](py::handle gate, py::handle up, py::handle out) {
    auto ga = import_tensor(gate, "geglu: gate");
    auto ua = import_tensor(up, "geglu: up");
    auto oa = import_optional(out, "geglu: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::geglu(ga.view, ua.view, view_or_null(oa));
    }
    return wrap(std::move(r));
  }, py::arg("gate"), py::arg("up"), py::arg("out") = py::none());
}

}  // namespace gemmacpp::bindings
