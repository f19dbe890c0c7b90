// Weight files for Python: the tensor table, the metadata as Python values, and each tensor's
// bytes as a read-only buffer that keeps the file mapping alive (NumPy views it without a copy).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "csrc/bindings/registry.h"
#include "csrc/core/error.h"
#include "csrc/io/weights.h"

namespace gemmacpp::bindings {
namespace {

namespace py = pybind11;

// Bytes inside a mapping; owning the mapping is what keeps NumPy views of it valid.
struct MappedBytes {
  std::shared_ptr<const MappedFile> file;
  const uint8_t* data;
  uint64_t size;
};

// Metadata strings are UTF-8 by the formats' rules; a broken one becomes U+FFFD rather than an
// error, so that one odd vocabulary entry does not make a file unreadable.
py::object to_str(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), py::ssize_t(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(o);
}

py::object scalar_to_py(const MetaValue& v) {
  using T = MetaValue::Type;
  switch (v.type) {
    case T::kU8: case T::kU16: case T::kU32: case T::kU64: return py::int_(v.u);
    case T::kI8: case T::kI16: case T::kI32: case T::kI64: return py::int_(v.i);
    case T::kBool: return py::bool_(v.u != 0);
    case T::kF32: case T::kF64: return py::float_(v.f);
    case T::kString: return to_str(v.str);
    case T::kArray: break;
  }
  return py::none();
}

py::object meta_to_py(const MetaValue& v) {
  if (v.type != MetaValue::Type::kArray) return scalar_to_py(v);
  py::list out(size_t(v.count));
  for (uint64_t k = 0; k < v.count; ++k) {
    if (v.elem_type == MetaValue::Type::kString) out[size_t(k)] = to_str(v.strings[k]);
    else if (v.elem_type == MetaValue::Type::kArray) out[size_t(k)] = meta_to_py(v.items[k]);
    else out[size_t(k)] = scalar_to_py(v.element(k));
  }
  return std::move(out);
}

}  // namespace

GEMMACPP_BINDING(weights) {
  py::class_<MappedBytes>(m, "MappedBytes", py::buffer_protocol(),
                          "Read-only bytes of a mapped weight file; keeps the mapping alive")
      .def_buffer([](MappedBytes& b) -> py::buffer_info {
        return py::buffer_info(const_cast<uint8_t*>(b.data), 1, "B", 1,
                               {py::ssize_t(b.size)}, {py::ssize_t(1)}, /*readonly=*/true);
      })
      .def("__len__", [](const MappedBytes& b) { return b.size; });

  using WF = std::shared_ptr<WeightFile>;  // immutable after parsing
  py::class_<WeightFile, WF>(m, "WeightFile", "A parsed, memory-mapped weight file (use gemmacpp.weights.open)")
      .def_property_readonly("format", [](const WeightFile& f) { return f.format; })
      .def_property_readonly("path", [](const WeightFile& f) { return f.path; })
      .def("names", [](const WeightFile& f) {
        py::list out;
        for (const auto& t : f.tensors) out.append(t.name);
        return out;
      })
      .def("__len__", [](const WeightFile& f) { return f.tensors.size(); })
      .def("__contains__", [](const WeightFile& f, const std::string& n) { return f.find(n) != nullptr; })
      .def("metadata", [](const WeightFile& f) {
        py::dict out;
        for (const auto& [key, value] : f.metadata) out[to_str(key)] = meta_to_py(value);
        return out;
      })
      .def("metadata_types", [](const WeightFile& f) {
        // key -> "uint32", "string", "array[float32]" ...
        py::dict out;
        for (const auto& [key, v] : f.metadata) {
          std::string t = meta_type_name(v.type);
          if (v.type == MetaValue::Type::kArray) t += str_cat("[", meta_type_name(v.elem_type), "]");
          out[to_str(key)] = t;
        }
        return out;
      })
      .def("tensor_info", [](const WeightFile& f, const std::string& name) {
        const WeightTensor& t = f.at(name);
        py::dict d;
        d["name"] = t.name;
        d["type"] = t.type_name();
        d["quantized"] = t.quantized;
        d["supported"] = t.supported;
        d["shape"] = py::tuple(py::cast(t.shape));
        d["nbytes"] = t.nbytes;
        d["offset"] = t.offset;
        d["file"] = t.file->path();
        return d;
      }, py::arg("name"))
      .def("tensor_bytes", [](const WeightFile& f, const std::string& name) {
        const WeightTensor& t = f.at(name);
        return MappedBytes{t.file, t.data, t.nbytes};
      }, py::arg("name"));

  m.def("open_weights", [](const std::string& path) {
    WF f;
    {
      py::gil_scoped_release nogil;
      f = std::make_shared<WeightFile>(open_weights(path));
    }
    return f;
  }, py::arg("path"), "Parse a .gguf / .safetensors file or a safetensors checkpoint folder");
}

}  // namespace gemmacpp::bindings
