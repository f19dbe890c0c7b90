// The bridge from a forward's HookSet to Python: one Python callable, dispatch(name, array),
// receives every activation whose name the caller asked for, as a NumPy array of its own (a copy,
// copied back after the call, so that no array a hook keeps can point at the forward's buffers)
// that it may edit in place. The GIL is taken only around that call. One hook set
// type for every model: the text models' forwards and the vision tower's encode.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "csrc/nn/hooks.h"

namespace gemmacpp::bindings {

class PyHookSet : public nn::HookSet {
 public:
  // dispatch: an object with .names (the exact hook names to offer) that is called as
  // dispatch(name, array). ValueError for a name the model has no hook site for. Needs the GIL,
  // and so does the destructor.
  PyHookSet(pybind11::object dispatch, const nn::HookSites& sites);

  bool wants(int site) const override { return wanted_[size_t(site)] != 0; }
  void call(int site, float* data, const std::vector<int64_t>& shape) override;

 private:
  pybind11::object dispatch_;
  const nn::HookSites& sites_;
  std::vector<char> wanted_;  // per site
  pybind11::array_t<float> spare_;  // the buffer hooks see (see call)
};

}  // namespace gemmacpp::bindings
