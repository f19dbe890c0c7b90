// Python objects <-> gemmacpp tensors, without copies: NumPy arrays through their buffer, anything
// else through __dlpack__; results go back as a _core.Tensor that speaks both protocols.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <optional>

#include "csrc/core/tensor.h"

namespace gemmacpp::bindings {

namespace py = pybind11;

// A borrowed view, valid while this object lives (it holds the producer's reference).
struct Imported {
  TensorView view;
  py::object owner;                       // NumPy array
  std::shared_ptr<void> managed;          // DLPack tensor, released through its deleter
};

// `what` names the argument in error messages ("attention: q").
Imported import_tensor(py::handle obj, const char* what, bool writable = false);
// None -> nullopt.
std::optional<Imported> import_optional(py::handle obj, const char* what, bool writable = false);
inline const TensorView* view_or_null(const std::optional<Imported>& a) {
  return a ? &a->view : nullptr;
}

// A Python _core.Tensor for `t`, or None when `t` is undefined (the op wrote into out=).
py::object wrap(Tensor t);

}  // namespace gemmacpp::bindings
