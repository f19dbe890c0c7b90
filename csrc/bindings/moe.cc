#include <string>
#include <tuple>

#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/moe.h"

namespace gemmacpp::bindings {
namespace {

// An expert stack: a float array [E, N, K] (qtype None), or raw GGML blocks with their qtype and
// shape (E, N, K).
struct ExpertsArg {
  Imported data;
  ops::ExpertWeights w;  // without its pointer: see weights()
  bool quantized = false;
  // The op's argument, pointing into this object (valid while it lives, where it lives).
  ops::ExpertWeights weights() const {
    ops::ExpertWeights r = w;
    (quantized ? r.blocks : r.values) = &data.view;
    return r;
  }
};

ExpertsArg import_experts(py::handle data, py::handle qtype, py::handle shape, const char* what,
                          const char* what_data) {
  ExpertsArg a;
  if (qtype.is_none()) {
    a.data = import_tensor(data, what);
    return a;
  }
  a.data = import_tensor(data, what_data);
  a.quantized = true;
  a.w.qtype = qtype.cast<std::string>();
  const auto s = shape.cast<std::tuple<int64_t, int64_t, int64_t>>();
  a.w.E = std::get<0>(s), a.w.N = std::get<1>(s), a.w.K = std::get<2>(s);
  return a;
}

}  // namespace

GEMMACPP_BINDING(moe) {
  m.def("moe_route", [](py::handle logits, int64_t k, py::handle per_expert_scale) {
    auto la = import_tensor(logits, "moe_route: logits");
    auto sa = import_optional(per_expert_scale, "moe_route: per_expert_scale");
    std::pair<Tensor, Tensor> r;
    {
      py::gil_scoped_release nogil;
      r = ops::moe_route(la.view, k, view_or_null(sa));
    }
    return py::make_tuple(wrap(std::move(r.first)), wrap(std::move(r.second)));
  }, py::arg("logits"), py::arg("k"), py::arg("per_expert_scale") = py::none(),
     "(ids [..., k] int32, weights [..., k] float32)");

  // gate_up / down: float arrays (qtype None) or raw GGML blocks with qtype and shape (E, N, K).
  m.def("moe", [](py::handle x, py::handle ids, py::handle weights, py::handle gate_up,
                  py::handle gate_up_qtype, py::handle gate_up_shape, py::handle down,
                  py::handle down_qtype, py::handle down_shape, py::handle out) {
    auto xa = import_tensor(x, "moe: x");
    auto ia = import_tensor(ids, "moe: ids");
    auto wa = import_tensor(weights, "moe: weights");
    auto gu = import_experts(gate_up, gate_up_qtype, gate_up_shape, "moe: gate_up",
                             "moe: gate_up.data");
    auto dn = import_experts(down, down_qtype, down_shape, "moe: down", "moe: down.data");
    auto oa = import_optional(out, "moe: out", /*writable=*/true);
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::moe(xa.view, ia.view, wa.view, gu.weights(), dn.weights(), view_or_null(oa));
    }
    return wrap(std::move(r));
  }, py::arg("x"), py::arg("ids"), py::arg("weights"), py::arg("gate_up"),
     py::arg("gate_up_qtype"), py::arg("gate_up_shape"), py::arg("down"), py::arg("down_qtype"),
     py::arg("down_shape"), py::arg("out") = py::none());
}

}  // namespace gemmacpp::bindings
