// The bridge from the forward's HookSet to Python: one Python callable, dispatch(name, array),
// receives every activation whose name the caller asked for, as a NumPy view of the forward's own
// buffer (no copy) that it may edit in place. The GIL is taken only around that call.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "csrc/nn/hooks.h"

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
// Needs the GIL. PyHookSet offers the text forward's activations through it, and the vision
// tower's hook set (bindings/siglip.cc) its own.
void offer_view(pybind11::object& dispatch, const std::string& name, float* data,
                const std::vector<int64_t>& shape);

}  // namespace gemmacpp::bindings
