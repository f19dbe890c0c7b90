#include "csrc/bindings/hooks.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
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
  // The hook gets a view of a buffer that Python owns (spare_), holding a copy of the activation
  // that is copied back after the call. A view of the forward's own buffer would outlive that
  // buffer wherever the hook kept it (in a list, in an exception it raised, in a slice), and
  // reading or writing it later would touch freed memory. spare_ is reused from call to call
  // while nothing but this hook set holds it, so the cost is two copies, not fresh pages.
  py::ssize_t n = 1;
  for (int64_t d : shape) n *= py::ssize_t(d);
  if (!spare_ || spare_.ref_count() > 1 || spare_.size() < n)
    spare_ = py::array_t<float>(std::max<py::ssize_t>(n, 1));
  const size_t bytes = size_t(n) * sizeof(float);
  std::memcpy(spare_.mutable_data(), data, bytes);
  std::vector<py::ssize_t> dims(shape.begin(), shape.end()), strides(shape.size());
  py::ssize_t stride = sizeof(float);
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= dims[i];
  }
  {
    // Slices of the view take spare_ as their base (it owns the memory), so its reference count
    // says whether anything of it was kept.
    py::array_t<float> view(dims, strides, spare_.mutable_data(), spare_);
    dispatch_(name, view);
  }
  GC_CHECK(spare_.size() >= n, ValueError, "the hook on '", name,
           "' resized its activation's buffer; edit its values (activation[...] = ...) instead");
  std::memcpy(data, spare_.data(), bytes);
  // A kept array (or a slice of it) stays valid but no longer reaches the model: edits made to it
  // later would be lost silently, so that is refused.
  if (spare_.ref_count() > 1) {
    spare_ = py::array_t<float>();
    throw ValueError(str_cat("the hook on '", name, "' kept a reference to its activation array, "
                             "which is only read back into the model during the call: keep a "
                             "copy instead (activation.copy())"));
  }
}

}  // namespace gemmacpp::bindings
