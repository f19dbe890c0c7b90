#include <string>

#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
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
}

}  // namespace gemmacpp::bindings
