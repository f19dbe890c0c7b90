#include <string>

#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/linear.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(linear) {
  // Float weights run the float path whatever `activations` says (only quantized products
  // round x); the name is still checked.
  m.def("linear", [](py::handle x, py::handle weight, py::handle bias, py::handle out,
                     const std::string& activations) {
    ops::activations_mode(activations, "linear");
    auto xa = import_tensor(x, "linear: x");
    auto wa = import_tensor(weight, "linear: weight");
    auto ba = import_optional(bias, "linear: bias");
    auto oa = import_optional(out, "linear: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::linear(xa.view, wa.view, view_or_null(ba), view_or_null(oa));
    }
    return wrap(std::move(r));
  }, py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("out") = py::none(),
     py::arg("activations") = "float32");

  // x @ W.T with W the [n, k] matrix of GGML blocks in `data` (see ops/dequantize.h).
  m.def("linear_quantized", [](py::handle x, py::handle data, const std::string& qtype, int64_t n,
                               int64_t k, py::handle bias, py::handle out,
                               const std::string& activations) {
    const Activations act = ops::activations_mode(activations, "linear");
    auto xa = import_tensor(x, "linear: x");
    auto da = import_tensor(data, "linear: weight.data");
    auto ba = import_optional(bias, "linear: bias");
    auto oa = import_optional(out, "linear: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::linear_quantized(xa.view, da.view, qtype, n, k, view_or_null(ba), view_or_null(oa),
                                act);
    }
    return wrap(std::move(r));
  }, py::arg("x"), py::arg("data"), py::arg("qtype"), py::arg("n"), py::arg("k"),
     py::arg("bias") = py::none(), py::arg("out") = py::none(), py::arg("activations") = "float32");
}

}  // namespace gemmacpp::bindings
