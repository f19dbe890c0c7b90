#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/rms_norm.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(rms_norm) {
  m.def("rms_norm", [](py::handle x, py::handle weight, float eps, bool unit_offset,
                       py::handle out) {
    auto xa = import_tensor(x, "rms_norm: x");
    auto wa = import_tensor(weight, "rms_norm: weight");
    auto oa = import_optional(out, "rms_norm: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::rms_norm(xa.view, wa.view, eps, unit_offset, view_or_null(oa));
    }
    return wrap(std::move(r));
  }, py::arg("x"), py::arg("weight"), py::arg("eps"), py::arg("unit_offset"),
     py::arg("out") = py::none());
}

}  // namespace gemmacpp::bindings
