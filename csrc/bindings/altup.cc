#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/altup.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(altup) {
  m.def("altup_predict", [](py::handle streams, py::handle logits, py::handle coefs, py::handle out) {
    auto sa = import_tensor(streams, "altup_predict: streams");
    auto la = import_tensor(logits, "altup_predict: router_logits");
    auto ca = import_tensor(coefs, "altup_predict: coefs");
    auto oa = import_optional(out, "altup_predict: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::altup_predict(sa.view, la.view, ca.view, view_or_null(oa));
    }
    return wrap(std::move(r));
  }, py::arg("streams"), py::arg("router_logits"), py::arg("coefs"), py::arg("out") = py::none());
  m.def("altup_correct", [](py::handle predictions, py::handle activated, py::handle logits, py::handle coefs,
                            py::handle out) {
    auto pa = import_tensor(predictions, "altup_correct: predictions");
    auto aa = import_tensor(activated, "altup_correct: activated");
    auto la = import_tensor(logits, "altup_correct: router_logits");
    auto ca = import_tensor(coefs, "altup_correct: coefs");
    auto oa = import_optional(out, "altup_correct: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::altup_correct(pa.view, aa.view, la.view, ca.view, view_or_null(oa));
    }
    return wrap(std::move(r));
  }, py::arg("predictions"), py::arg("activated"), py::arg("router_logits"), py::arg("coefs"),
     py::arg("out") = py::none());
  m.def("altup_rescale", [](py::handle streams, float eps, py::handle out) {
    auto sa = import_tensor(streams, "altup_rescale: streams");
    auto oa = import_optional(out, "altup_rescale: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::altup_rescale(sa.view, eps, view_or_null(oa));
    }
    return wrap(std::move(r));
  }, py::arg("streams"), py::arg("eps"), py::arg("out") = py::none());
}

}  // namespace gemmacpp::bindings
