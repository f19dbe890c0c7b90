#include <string>

#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/sae.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(sae) {
  m.def("sae_encode", [](py::handle x, py::handle w_enc, py::handle b_enc, py::handle threshold,
                         int64_t k, const std::string& activation, py::handle b_dec, bool sparse,
                         bool dense, bool pre) {
    auto xa = import_tensor(x, "sae_encode: x");
    auto wa = import_tensor(w_enc, "sae_encode: W_enc");
    auto ba = import_optional(b_enc, "sae_encode: b_enc");
    auto ta = import_optional(threshold, "sae_encode: threshold");
    auto da = import_optional(b_dec, "sae_encode: b_dec");
    ops::SaeEncodeResult r;
    {
      py::gil_scoped_release nogil;
      r = ops::sae_encode(xa.view, wa.view, view_or_null(ba), view_or_null(ta), k, activation,
                          view_or_null(da), sparse, dense, pre);
    }
    return py::make_tuple(wrap(std::move(r.values)), wrap(std::move(r.indices)),
                          wrap(std::move(r.offsets)), wrap(std::move(r.dense)),
                          wrap(std::move(r.pre)));
  }, py::arg("x"), py::arg("w_enc"), py::arg("b_enc"), py::arg("threshold"), py::arg("k"),
     py::arg("activation"), py::arg("b_dec"), py::arg("sparse"), py::arg("dense"),
     py::arg("pre"), "(values, indices, offsets, dense, pre), None where not asked for");

  m.def("sae_decode", [](py::handle values, py::handle indices, py::handle offsets,
                         py::handle w_dec, py::handle b_dec, py::handle out) {
    auto va = import_tensor(values, "sae_decode: values");
    auto ia = import_tensor(indices, "sae_decode: indices");
    auto oa = import_tensor(offsets, "sae_decode: offsets");
    auto wa = import_tensor(w_dec, "sae_decode: W_dec");
    auto ba = import_optional(b_dec, "sae_decode: b_dec");
    auto outa = import_optional(out, "sae_decode: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::sae_decode(va.view, ia.view, oa.view, wa.view, view_or_null(ba),
                          view_or_null(outa));
    }
    return wrap(std::move(r));
  }, py::arg("values"), py::arg("indices"), py::arg("offsets"), py::arg("w_dec"),
     py::arg("b_dec") = py::none(), py::arg("out") = py::none());

  m.def("sae_decode_dense", [](py::handle acts, py::handle w_dec, py::handle b_dec,
                               py::handle out) {
    auto aa = import_tensor(acts, "sae_decode: acts");
    auto wa = import_tensor(w_dec, "sae_decode: W_dec");
    auto ba = import_optional(b_dec, "sae_decode: b_dec");
    auto outa = import_optional(out, "sae_decode: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::sae_decode_dense(aa.view, wa.view, view_or_null(ba), view_or_null(outa));
    }
    return wrap(std::move(r));
  }, py::arg("acts"), py::arg("w_dec"), py::arg("b_dec") = py::none(),
     py::arg("out") = py::none());
}

}  // namespace gemmacpp::bindings
