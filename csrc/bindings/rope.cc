#include <pybind11/stl.h>

#include <optional>

#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/rope.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(rope) {
  m.def("rope", [](py::handle x, py::handle positions, double base, double scale,
                   std::optional<int64_t> rotary_dim, std::optional<int64_t> rotated_pairs, py::handle out) {
    auto xa = import_tensor(x, "rope: x");
    auto pa = import_tensor(positions, "rope: positions");
    auto oa = import_optional(out, "rope: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::rope(xa.view, pa.view, base, scale, rotary_dim, rotated_pairs, view_or_null(oa));
    }
    return wrap(std::move(r));
  }, py::arg("x"), py::arg("positions"), py::arg("base"), py::arg("scale"),
     py::arg("rotary_dim") = py::none(), py::arg("rotated_pairs") = py::none(), py::arg("out") = py::none());
}

}  // namespace gemmacpp::bindings
