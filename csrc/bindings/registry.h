// Each binding file registers itself with GEMMACPP_BINDING(name) { ... m.def(...) ... }, so that
// adding an op never touches a shared list.
#pragma once

#include <pybind11/pybind11.h>

#include <vector>

namespace gemmacpp::bindings {

using BindFn = void (*)(pybind11::module_&);
std::vector<BindFn>& registry();
struct Registrar {
  explicit Registrar(BindFn fn) { registry().push_back(fn); }
};

}  // namespace gemmacpp::bindings

#define GEMMACPP_BINDING(name)                                                     \
  static void gemmacpp_bind_##name(pybind11::module_& m);                          \
  static ::gemmacpp::bindings::Registrar gemmacpp_registrar_##name(&gemmacpp_bind_##name); \
  static void gemmacpp_bind_##name(pybind11::module_& m)
