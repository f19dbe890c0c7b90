#include "csrc/bindings/hooks.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>

#include "csrc/core/error.h"

namespace gemmacpp::bindings {

namespace py = pybind11;

PyHookSet::PyHookSet(py::object dispatch, const nn::HookSites& sites)
    : dispatch_(std::move(dispatch)), sites_(sites), wanted_(size_t(sites.size()), 0) {
  for (const std::string& name : dispatch_.attr("names").cast<std::vector<std::string>>()) {
    const int site = sites_.find(name);
    GC_CHECK(site >= 0, ValueError, "no hook point named '", name, "' (see model.hook_names())");
    wanted_[size_t(site)] = 1;
  }
}

void PyHookSet::call(int site, float* data, const std::vector<int64_t>& shape) {
  py::gil_scoped_acquire gil;
  const std::string& name = sites_.name(site);
  // The hook gets an array that owns a copy of the activation, copied back after the call. A view
  // of the forward's buffer would outlive that buffer wherever the hook kept it (in a list, in an
  // exception it raised, in a slice), and reading or writing it later would touch freed memory.
  // The two copies cost a few percent of a hooked forward (every hooked value took a GEMM or an
  // attention row to make); forwards without hooks never come here.
  py::array_t<float> view(std::vector<py::ssize_t>(shape.begin(), shape.end()));
  const py::ssize_t nbytes = view.nbytes();
  if (nbytes) std::memcpy(view.mutable_data(), data, size_t(nbytes));
  dispatch_(name, view);
  // The hook may have edited it in place (the point of a hook), not resized or retyped it.
  GC_CHECK(view.nbytes() == nbytes && view.ndim() == py::ssize_t(shape.size()) &&
               (view.flags() & py::array::c_style),
           ValueError, "the hook on '", name, "' resized or reshaped its activation array in place; "
           "edit its values (activation[...] = ...) instead");
  if (nbytes) std::memcpy(data, view.data(), size_t(nbytes));
  // A kept array (or a slice of it) would no longer reach the model: edits made later are lost.
  GC_CHECK(view.ref_count() == 1, ValueError, "the hook on '", name,
           "' kept a reference to its activation array, which is only read back into the model "
           "during the call: keep a copy instead (activation.copy())");
}

}  // namespace gemmacpp::bindings
