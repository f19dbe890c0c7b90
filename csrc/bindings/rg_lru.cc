#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/rg_lru.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(rg_lru) {
  m.def("rg_lru", [](py::handle x, py::handle gate_x, py::handle gate_a, py::handle a_param,
                     py::handle h0, py::handle reset, float c) {
    auto xa = import_tensor(x, "rg_lru: x");
    auto gxa = import_tensor(gate_x, "rg_lru: gate_x");
    auto gaa = import_tensor(gate_a, "rg_lru: gate_a");
    auto apa = import_tensor(a_param, "rg_lru: a_param");
    auto h0a = import_optional(h0, "rg_lru: h0");
    auto ra = import_optional(reset, "rg_lru: reset");
    ops::RgLruResult r;
    {
      py::gil_scoped_release nogil;
      r = ops::rg_lru(xa.view, gxa.view, gaa.view, apa.view, view_or_null(h0a), view_or_null(ra), c);
    }
    return py::make_tuple(wrap(std::move(r.y)), wrap(std::move(r.h_last)));
  }, py::arg("x"), py::arg("gate_x"), py::arg("gate_a"), py::arg("a_param"),
     py::arg("h0") = py::none(), py::arg("reset") = py::none(), py::arg("c") = 8.0f,
     "(y [B, T, W], h_last [B, W] float32)");
}

}  // namespace gemmacpp::bindings
