// The bridge from the forward's HookSet to Python: one Python callable, dispatch(name, array),
// receives every activation whose name the caller asked for, as a NumPy view of the forward's own
// buffer (no copy) that it may edit in place. The GIL is taken only around that call.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "csrc/core/error.h"
#include "csrc/models/hooks.h"

namespace gemmacpp::bindings {

class PyHookSet : public HookSet {
 public:
  // dispatch: an object with .names (the exact hook names to offer) that is called as
  // dispatch(name, array). ValueError for a name the model has no hook point for. Needs the GIL,
  // and so does the destructor.
  PyHookSet(pybind11::object dispatch, int64_t n_layers);

  bool wants(HookPoint point, int64_t layer) const override;
  void call(HookPoint point, int64_t layer, float* data, const std::vector<int64_t>& shape) override;

 private:
  size_t slot(HookPoint point, int64_t layer) const {
    return size_t(int(point)) * size_t(n_layers_ + 1) + size_t(layer + 1);
  }
  pybind11::object dispatch_;
  int64_t n_layers_;
  std::vector<char> wanted_;  // per (point, layer + 1)
};

// Calls dispatch(name, view) with a float32 NumPy view of `data` (contiguous, this shape) and
// refuses a hook that kept the view past the call (the buffer is the caller's, only valid now).
// Needs the GIL. For hook sets beyond the Gemma forward's (the vision tower's, bindings/siglip.cc).
inline void offer_view(pybind11::object& dispatch, const std::string& name, float* data,
                       const std::vector<int64_t>& shape) {
  namespace py = pybind11;
  std::vector<py::ssize_t> dims(shape.begin(), shape.end()), strides(shape.size());
  py::ssize_t stride = sizeof(float);
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= dims[i];
  }
  py::capsule base(data, [](void*) {});  // a base makes the array a view; nothing to free
  py::array_t<float> view(dims, strides, data, base);
  dispatch(name, view);
  GC_CHECK(view.ref_count() == 1, ValueError, "the hook on '", name,
           "' kept a reference to its activation array, which is a view of a buffer that is only "
           "valid during the call: keep a copy instead (activation.copy())");
}

}  // namespace gemmacpp::bindings
