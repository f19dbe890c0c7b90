#include <string>

#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/core/error.h"
#include "csrc/core/qtype.h"
#include "csrc/cpu/quant.h"
#include "csrc/ops/dequantize.h"

namespace gemmacpp::bindings {

GEMMACPP_BINDING(dequantize) {
  m.def("dequantize", [](py::handle data, const std::string& qtype, int64_t n, int64_t k) {
    auto da = import_tensor(data, "dequantize: data");
    Tensor r;
    {
      py::gil_scoped_release nogil;
      r = ops::dequantize(da.view, qtype, n, k);
    }
    return wrap(std::move(r));
  }, py::arg("data"), py::arg("qtype"), py::arg("n"), py::arg("k"));

  m.def("quant_matvec_fused", [](const std::string& qtype) {
    QType t;
    GC_CHECK(parse_qtype(qtype, &t), ValueError, "quant_matvec_fused: qtype '", qtype,
             "' is not supported (supported: ", supported_qtypes(), ")");
    return cpu::quantized_matvec_fused(t);
  }, py::arg("qtype"),
     "Whether linear's matrix-vector path reads this qtype's blocks in registers on the SIMD "
     "target dispatched to now (False: a generic path that expands each row first)");
}

}  // namespace gemmacpp::bindings
