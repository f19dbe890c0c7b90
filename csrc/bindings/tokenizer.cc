// The tokenizer for Python: construction from a GGUF file or a tokenizer.json, encode and decode
// (both release the GIL, so threads can tokenize in parallel).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "csrc/bindings/registry.h"
#include "csrc/core/error.h"
#include "csrc/tokenizer/tokenizer.h"
#include "csrc/io/weights.h"
#include "csrc/nn/text_model.h"

namespace gemmacpp::bindings {
namespace {

namespace py = pybind11;

// Pieces are UTF-8 by the formats' rules; a broken one reads as U+FFFD rather than raising.
py::str utf8(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), py::ssize_t(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

}  // namespace

GEMMACPP_BINDING(tokenizer) {
  // pybind11 holders cannot be pointers to const; the object is never modified after building.
  using T = std::shared_ptr<Tokenizer>;
  py::class_<Tokenizer, T>(m, "Tokenizer", "Gemma's BPE tokenizer (use gemmacpp.tokenizer.Tokenizer)")
      .def_property_readonly("vocab_size", &Tokenizer::vocab_size)
      .def_property_readonly("bos_id", &Tokenizer::bos_id)
      .def_property_readonly("eos_id", &Tokenizer::eos_id)
      .def_property_readonly("pad_id", &Tokenizer::pad_id)
      .def_property_readonly("unk_id", &Tokenizer::unk_id)
      .def("encode", [](const Tokenizer& t, const std::string& text, bool add_bos) {
        std::vector<int32_t> ids;
        {
          py::gil_scoped_release nogil;
          ids = t.encode(text, add_bos);
        }
        return ids;
      }, py::arg("text"), py::arg("add_bos"))
      .def("decode", [](const Tokenizer& t, const std::vector<int64_t>& ids, bool skip_special) {
        std::string s;
        {
          py::gil_scoped_release nogil;
          s = t.decode(ids.data(), ids.size(), skip_special);
        }
        return utf8(s);
      }, py::arg("ids"), py::arg("skip_special"))
      .def("id_to_piece", [](const Tokenizer& t, int64_t id) { return utf8(t.id_to_piece(id)); }, py::arg("id"))
      .def("piece_to_id", [](const Tokenizer& t, const std::string& p) { return t.piece_to_id(p); },
           py::arg("piece"))
      .def("is_special", [](const Tokenizer& t, int64_t id) {
        GC_CHECK(id >= 0 && id < t.vocab_size(), ValueError, "is_special: token id ", id, " is out of range");
        return t.is_special(int32_t(id));
      }, py::arg("id"));

  m.def("tokenizer_from_gguf", [](const std::string& path) {
    T t;
    {
      py::gil_scoped_release nogil;
      t = std::const_pointer_cast<Tokenizer>(Tokenizer::from_gguf(open_weights(path)));
    }
    return t;
  }, py::arg("path"));
  m.def("tokenizer_from_weights", [](const std::shared_ptr<WeightFile>& f) {
    T t;
    {
      py::gil_scoped_release nogil;
      t = std::const_pointer_cast<Tokenizer>(Tokenizer::from_gguf(*f));
    }
    return t;
  }, py::arg("file"));
  // A GGUF model's tokenizer from the model's own mapping of its file, so that it matches the
  // loaded weights even if the file on disk was replaced since.
  m.def("tokenizer_from_model", [](const nn::TextModel& model) {
    GC_CHECK(model.weights().format == "gguf", ValueError, "tokenizer_from_model: '", model.weights().path,
             "' is not a GGUF file");
    T t;
    {
      py::gil_scoped_release nogil;
      t = std::const_pointer_cast<Tokenizer>(Tokenizer::from_gguf(model.weights()));
    }
    return t;
  }, py::arg("model"));
  m.def("tokenizer_from_hf_json", [](const std::string& path) {
    T t;
    {
      py::gil_scoped_release nogil;
      t = std::const_pointer_cast<Tokenizer>(Tokenizer::from_hf_json(path));
    }
    return t;
  }, py::arg("path"));
}

}  // namespace gemmacpp::bindings
