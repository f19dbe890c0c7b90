#include <pybind11/stl.h>

#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/ops/attention.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(attention) {
  // One batch [B, T, H, D], or with cu_seqlens_q and cu_seqlens_k packed sequences [total, H, D]
  // (ops.py checks that they come together).
  m.def("attention",
        [](py::handle q, py::handle k, py::handle v, bool causal, std::optional<int64_t> window,
           std::optional<float> softcap, std::optional<float> scale,
           std::optional<int64_t> q_start, int64_t prefix_len, py::handle key_range,
           py::handle cu_seqlens_q, py::handle cu_seqlens_k, py::handle out) {
          auto qa = import_tensor(q, "attention: q");
          auto ka = import_tensor(k, "attention: k");
          auto va = import_tensor(v, "attention: v");
          auto cqa = import_optional(cu_seqlens_q, "attention: cu_seqlens_q");
          auto cka = import_optional(cu_seqlens_k, "attention: cu_seqlens_k");
          auto oa = import_optional(out, "attention: out", /*writable=*/true);
          auto ra = import_optional(key_range, "attention: key_range");
          ops::AttentionOptions opt;
          opt.causal = causal, opt.window = window, opt.softcap = softcap, opt.scale = scale;
          opt.q_start = q_start, opt.prefix_len = prefix_len;
          opt.key_range = view_or_null(ra);
          Tensor r;
          {
            py::gil_scoped_release nogil;
            r = cqa && cka ? ops::attention_varlen(qa.view, ka.view, va.view, cqa->view, cka->view, opt,
                                                   view_or_null(oa))
                           : ops::attention(qa.view, ka.view, va.view, opt, view_or_null(oa));
          }
          return wrap(std::move(r));
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("causal") = true,
        py::arg("window") = py::none(), py::arg("softcap") = py::none(),
        py::arg("scale") = py::none(), py::arg("q_start") = py::none(),
        py::arg("prefix_len") = 0, py::arg("key_range") = py::none(),
        py::arg("cu_seqlens_q") = py::none(), py::arg("cu_seqlens_k") = py::none(),
        py::arg("out") = py::none());
}

}  // namespace gemmacpp::bindings
