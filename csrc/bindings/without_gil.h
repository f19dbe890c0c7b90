// Long C++ work (loading a checkpoint, a forward pass) runs with the GIL released, so that other
// Python threads go on meanwhile.
#pragma once

#include <pybind11/pybind11.h>

#include <utility>

namespace gemmacpp::bindings {

// f() with the GIL released; what it returns (by value) must not need the GIL to move or destroy.
template <class F>
auto without_gil(F&& f) {
  pybind11::gil_scoped_release nogil;
  return std::forward<F>(f)();
}

}  // namespace gemmacpp::bindings
