#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/gaussian_topk.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(gaussian_topk) {
  m.def("gaussian_topk", [](py::handle x, float z, py::handle out) {
    auto xa = import_tensor(x, "gaussian_topk: x");
    auto oa = import_optional(out, "gaussian_topk: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::gaussian_topk(xa.view, z, view_or_null(oa));
    }
    return wrap(std::move(r));
  }, py::arg("x"), py::arg("z"), py::arg("out") = py::none());
}

}  // namespace gemmacpp::bindings
