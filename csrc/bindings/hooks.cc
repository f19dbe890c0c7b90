#include "csrc/bindings/hooks.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

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
  std::vector<py::ssize_t> dims(shape.begin(), shape.end()), strides(shape.size());
  py::ssize_t stride = sizeof(float);
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= dims[i];
  }
  // A base object makes the array a view of `data` (pybind11 copies otherwise); the buffer
  // belongs to the forward, so nothing is freed with the capsule.
  py::capsule base(data, [](void*) {});
  py::array_t<float> view(dims, strides, data, base);
  dispatch_(name, view);
  // The view dies with the caller's buffers: a hook that kept it (or a slice of it) would read
  // freed memory later. Refuse that loudly rather than let it happen silently.
  GC_CHECK(view.ref_count() == 1, ValueError, "the hook on '", name,
           "' kept a reference to its activation array, which is a view of a buffer that is only "
           "valid during the call: keep a copy instead (activation.copy())");
}

}  // namespace gemmacpp::bindings
