#include "csrc/bindings/tensor_convert.h"

#include <pybind11/numpy.h>

#include <string>

#include "csrc/core/dlpack.h"
#include "csrc/core/error.h"

namespace gemmacpp::bindings {
namespace {

DType numpy_dtype(const py::dtype& dt, const char* what) {
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  // '>' or '<' only where it differs from the machine's order ('=' native, '|' not applicable):
  // the kernels read native words, so a byte-swapped array would be silently misread.
  const char order = dt.byteorder();
  GC_CHECK(order != '>' && order != '<', TypeError, what, ": array of dtype ",
           py::str(dt).cast<std::string>(), " is not in the machine's byte order; convert it "
           "with a.astype(a.dtype.newbyteorder('='))");
  // ml_dtypes' bfloat16 is a user-defined dtype (kind 'V'): only those need the name look-up.
  if (kind == 'V' && size == 2 && py::str(dt.attr("name")).cast<std::string>() == "bfloat16")
    return DType::kBF16;
  if (kind == 'f' && size == 4) return DType::kF32;
  if (kind == 'f' && size == 2) return DType::kF16;
  if (kind == 'f' && size == 8) return DType::kF64;
  if (kind == 'i' && size == 4) return DType::kI32;
  if (kind == 'i' && size == 8) return DType::kI64;
  if (kind == 'i' && size == 1) return DType::kI8;
  if (kind == 'u' && size == 1) return DType::kU8;
  if (kind == 'b') return DType::kBool;
  throw TypeError(str_cat(what, ": unsupported NumPy dtype ",
                          py::str(dt).cast<std::string>()));
}

Imported import_numpy(const py::array& a, const char* what, bool writable) {
  Imported r;
  r.owner = a;
  TensorView& v = r.view;
  v.dtype = numpy_dtype(a.dtype(), what);
  const int64_t es = a.itemsize();
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    v.shape.push_back(a.shape(i));
    GC_CHECK(a.strides(i) % es == 0, ValueError, what,
             ": array strides are not a multiple of its element size");
    v.strides.push_back(a.strides(i) / es);
  }
  v.writable = a.writeable();
  GC_CHECK(!writable || v.writable, ValueError, what, " is a read-only array");
  v.data = const_cast<void*>(a.data());
  return r;
}

template <class Managed>
Imported adopt(Managed* m, bool read_only, const char* what, bool writable) {
  Imported r;
  r.managed = std::shared_ptr<void>(m, [](void* p) {
    auto* mt = static_cast<Managed*>(p);
    if (mt->deleter) mt->deleter(mt);
  });
  r.view = dlpack::view_of(m->dl_tensor, read_only, what);
  GC_CHECK(!writable || r.view.writable, ValueError, what, " is read-only");
  return r;
}

Imported import_dlpack(py::handle obj, const char* what, bool writable) {
  py::object capsule;
  py::tuple dev = obj.attr("__dlpack_device__")();
  const int dev_type = dev[0].cast<int>();
  py::dict kwargs;
  // Legacy default stream: the producer orders its pending work before ours.
  if (dev_type == dlpack::kDLCUDA || dev_type == dlpack::kDLCUDAManaged) kwargs["stream"] = 1;
  try {
    kwargs["max_version"] = py::make_tuple(dlpack::kMajorVersion, dlpack::kMinorVersion);
    capsule = obj.attr("__dlpack__")(**kwargs);
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_TypeError)) throw;
    PyDict_DelItemString(kwargs.ptr(), "max_version");
    capsule = obj.attr("__dlpack__")(**kwargs);
  }
  PyObject* cap = capsule.ptr();
  if (PyCapsule_IsValid(cap, "dltensor_versioned")) {
    auto* m = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(cap, "dltensor_versioned"));
    PyCapsule_SetName(cap, "used_dltensor_versioned");
    GC_CHECK(m->version.major == dlpack::kMajorVersion, TypeError, what,
             ": unsupported DLPack major version ", m->version.major);
    return adopt(m, (m->flags & dlpack::kFlagReadOnly) != 0, what, writable);
  }
  if (PyCapsule_IsValid(cap, "dltensor")) {
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
    PyCapsule_SetName(cap, "used_dltensor");
    return adopt(m, false, what, writable);
  }
  throw TypeError(str_cat(what, ": __dlpack__ did not return a DLPack capsule"));
}

}  // namespace

Imported import_tensor(py::handle obj, const char* what, bool writable) {
  GC_CHECK(!obj.is_none(), TypeError, what, " is None; expected an array");
  // A torch tensor that requires grad refuses DLPack export; an input is read as torch's own ops
  // read it (its data, no graph). An output (writable) keeps torch's refusal.
  if (!writable && py::hasattr(obj, "requires_grad") && py::hasattr(obj, "detach") &&
      py::bool_(obj.attr("requires_grad")))
    return import_tensor(obj.attr("detach")(), what, writable);
  if (py::isinstance<py::array>(obj)) return import_numpy(py::reinterpret_borrow<py::array>(obj), what, writable);
  if (py::hasattr(obj, "__dlpack__") && py::hasattr(obj, "__dlpack_device__"))
    return import_dlpack(obj, what, writable);
  throw TypeError(str_cat(what, " must be a NumPy array or a tensor with __dlpack__ (torch, JAX, CuPy), got ",
                          py::str(py::type::of(obj).attr("__name__")).cast<std::string>()));
}

std::optional<Imported> import_optional(py::handle obj, const char* what, bool writable) {
  if (obj.is_none()) return std::nullopt;
  return import_tensor(obj, what, writable);
}

py::object wrap(Tensor t) {
  if (!t.defined()) return py::none();
  return py::cast(std::move(t));
}

}  // namespace gemmacpp::bindings
