// The _core extension module: exception mapping, the Tensor type, runtime queries; each op's
// binding registers itself (registry.h).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "csrc/bindings/registry.h"
#include "csrc/bindings/tensor_convert.h"
#include "csrc/core/device_memory.h"
#include "csrc/core/dlpack.h"
#include "csrc/core/error.h"
#include "csrc/core/threads.h"
#include "csrc/cpu/info.h"
#ifdef GEMMACPP_WITH_CUDA
#include "csrc/cuda/runtime.h"
#endif

#ifndef GEMMACPP_VERSION
#define GEMMACPP_VERSION "0.0.0+dev"
#endif

namespace py = pybind11;
using namespace gemmacpp;

namespace gemmacpp::bindings {
std::vector<BindFn>& registry() {
  static std::vector<BindFn> fns;
  return fns;
}
}  // namespace gemmacpp::bindings

namespace {

const char* buffer_format(DType t) {
  switch (t) {
    case DType::kF32: return "f";
    case DType::kF16: return "e";
    case DType::kBF16: return "H";  // raw bits; the Python side views them as ml_dtypes.bfloat16
    case DType::kF64: return "d";
    case DType::kI8: return "b";
    case DType::kI32: return "i";
    case DType::kI64: return "q";
    case DType::kU8: return "B";
    case DType::kBool: return "?";
  }
  return "B";
}

template <class Managed>
void release_unconsumed(PyObject* capsule, const char* name) {
  // A capsule nobody consumed still owns its tensor (DLPack: the consumer renames it).
  if (PyCapsule_IsValid(capsule, name)) {
    auto* m = static_cast<Managed*>(PyCapsule_GetPointer(capsule, name));
    if (m && m->deleter) m->deleter(m);
  }
}

py::capsule to_capsule(const Tensor& t, py::object max_version) {
  bool versioned = false;
  if (!max_version.is_none()) versioned = py::cast<py::tuple>(max_version)[0].cast<int>() >= 1;
  if (versioned) {
    return py::capsule(dlpack::export_versioned(t), "dltensor_versioned", [](PyObject* c) {
      release_unconsumed<DLManagedTensorVersioned>(c, "dltensor_versioned");
    });
  }
  return py::capsule(dlpack::export_legacy(t), "dltensor", [](PyObject* c) {
    release_unconsumed<DLManagedTensor>(c, "dltensor");
  });
}

std::vector<std::string> devices() {
  std::vector<std::string> d{"cpu"};
#ifdef GEMMACPP_WITH_CUDA
  for (int i = 0, n = cuda::device_count(); i < n; ++i) d.push_back("cuda:" + std::to_string(i));
#endif
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "gemmacpp C++ core (use the gemmacpp package, not this module)";
  m.attr("__version__") = GEMMACPP_VERSION;

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const NotImplementedError& e) {
      PyErr_SetString(PyExc_NotImplementedError, e.what());
    } catch (const MemoryError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });

  py::class_<Tensor>(m, "Tensor", py::buffer_protocol(),
                     "A result owned by gemmacpp; speaks the buffer protocol and DLPack")
      .def_buffer([](Tensor& t) -> py::buffer_info {
        const TensorView& v = t.view();
        GC_CHECK(v.device.is_cpu(), ValueError, "a ", v.device.str(),
                 " tensor has no CPU buffer; use DLPack");
        std::vector<py::ssize_t> shape(v.shape.begin(), v.shape.end()), strides;
        for (int64_t s : v.strides) strides.push_back(s * dtype_size(v.dtype));
        return py::buffer_info(v.data, dtype_size(v.dtype), buffer_format(v.dtype), v.ndim(),
                               shape, strides);
      })
      .def("__dlpack__",
           [](const Tensor& t, py::object stream, py::object max_version, py::object dl_device,
              py::object copy) { return to_capsule(t, max_version); },
           py::kw_only(), py::arg("stream") = py::none(), py::arg("max_version") = py::none(),
           py::arg("dl_device") = py::none(), py::arg("copy") = py::none())
      .def("__dlpack_device__",
           [](const Tensor& t) {
             int32_t type, id;
             dlpack::device_of(t.view().device, &type, &id);
             return py::make_tuple(type, id);
           })
      .def_property_readonly("shape", [](const Tensor& t) { return py::tuple(py::cast(t.view().shape)); })
      .def_property_readonly("dtype", [](const Tensor& t) { return dtype_name(t.view().dtype); })
      .def_property_readonly("device", [](const Tensor& t) { return t.view().device.str(); });

  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &get_num_threads);
  m.def("devices", &devices);
  m.def("simd_target", &cpu::simd_target_name,
        "The Highway target the CPU kernels dispatch to on this machine");
  m.def("simd_targets_compiled", &cpu::compiled_target_names);
  m.def("simd_targets_supported", &cpu::supported_target_names,
        "The compiled Highway targets this CPU can run, best first");
  m.def("set_simd_target",
        [](std::optional<std::string> name) {
          if (name) {
            cpu::set_simd_target(*name);
          } else {
            cpu::reset_simd_target();
          }
        },
        py::arg("name"),
        "Dispatch every CPU kernel to the named target (one of simd_targets_supported()), or "
        "back to the best one for None. For tests and benchmarks; not while an op runs.");
#ifdef GEMMACPP_WITH_CUDA
  m.attr("cuda_compiled") = true;
#else
  m.attr("cuda_compiled") = false;
#endif

#ifdef GEMMACPP_WITH_CUDA
  device_memory::register_cuda(&cuda::allocate);
#endif
  for (auto fn : bindings::registry()) fn(m);
}
