#include "csrc/bindings/hooks.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "csrc/core/error.h"

namespace gemmacpp::bindings {

namespace py = pybind11;

PyHookSet::PyHookSet(py::object dispatch, int64_t n_layers)
    : dispatch_(std::move(dispatch)), n_layers_(n_layers),
      wanted_(size_t(HookPoint::kCount) * size_t(n_layers + 1), 0) {
  for (const std::string& name : dispatch_.attr("names").cast<std::vector<std::string>>()) {
    HookPoint p = HookPoint::kEmbed;
    int64_t layer = -1;
    GC_CHECK(parse_hook_name(name, n_layers_, &p, &layer), ValueError, "no hook point named '", name,
             "' (see model.hook_names())");
    wanted_[slot(p, layer)] = 1;
  }
}

bool PyHookSet::wants(HookPoint point, int64_t layer) const {
  return wanted_[slot(point, hook_point_per_layer(point) ? layer : -1)] != 0;
}

void PyHookSet::call(HookPoint point, int64_t layer, float* data, const std::vector<int64_t>& shape) {
  py::gil_scoped_acquire gil;
  offer_view(dispatch_, hook_name(point, layer), data, shape);
}

void offer_view(py::object& dispatch, const std::string& name, float* data,
                const std::vector<int64_t>& shape) {
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
  dispatch(name, view);
  // The view dies with the caller's buffers: a hook that kept it (or a slice of it) would read
  // freed memory later. Refuse that loudly rather than let it happen silently.
  GC_CHECK(view.ref_count() == 1, ValueError, "the hook on '", name,
           "' kept a reference to its activation array, which is a view of a buffer that is only "
           "valid during the call: keep a copy instead (activation.copy())");
}

}  // namespace gemmacpp::bindings
