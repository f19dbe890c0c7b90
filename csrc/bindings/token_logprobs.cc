#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/token_logprobs.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(token_logprobs) {
  m.def("token_logprobs", [](py::handle logits, py::handle targets) {
    auto la = import_tensor(logits, "token_logprobs: logits");
    auto ta = import_tensor(targets, "token_logprobs: targets");
    std::pair<Tensor, Tensor> r;
    {
      py::gil_scoped_release nogil;
      r = ops::token_logprobs(la.view, ta.view);
    }
    return py::make_tuple(wrap(std::move(r.first)), wrap(std::move(r.second)));
  }, py::arg("logits"), py::arg("targets"), "(logp [...] float64, argmax [...] int64)");
}

}  // namespace gemmacpp::bindings
