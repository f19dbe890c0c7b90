#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/softcap.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(softcap) {
  m.def("softcap", [](py::handle x, float cap, py::handle out) {
    auto xa = import_tensor(x, "softcap: x");
    auto oa = import_optional(out, "softcap: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::softcap(xa.view, cap, view_or_null(oa));
    }
    return wrap(std::move(r));
  }, py::arg("x"), py::arg("cap"), py::arg("out") = py::none());
}

}  // namespace gemmacpp::bindings
