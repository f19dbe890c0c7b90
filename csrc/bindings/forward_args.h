// The Python face of every model's forward (GemmaModel, GriffinModel): int64 tokens [B, T], the
// cache, per-row lengths, last_only and the hooks, converted and checked one way. A binding adds
// its own inputs (Gemma's vision-language ones) between bind_forward_args and run_forward.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "csrc/bindings/hooks.h"
#include "csrc/bindings/without_gil.h"
#include "csrc/core/error.h"
#include "csrc/nn/forward_args.h"

namespace gemmacpp::bindings {

// A C-contiguous NumPy array of T, converted from whatever array-like the caller passed.
template <class T>
using CArray = pybind11::array_t<T, pybind11::array::c_style | pybind11::array::forcecast>;

// Points a's shared fields at tokens, lengths (both must outlive the forward) and a new logits
// array [B, T, vocab] ([B, 1, vocab] with last_only), which it returns. ValueError for tokens
// that are not [B, T] or lengths that are not one per row.
template <class Cache>
pybind11::array_t<float> bind_forward_args(ForwardArgs<Cache>& a, const CArray<int64_t>& tokens, Cache* cache,
                                           const std::optional<std::vector<int64_t>>& lengths,
                                           bool last_only, int64_t vocab) {
  GC_CHECK(tokens.ndim() == 2, ValueError, "forward: tokens must be [B, T], got rank ", tokens.ndim());
  a.B = tokens.shape(0);
  a.T = tokens.shape(1);
  GC_CHECK(!lengths || int64_t(lengths->size()) == a.B, ValueError, "forward: ", a.B,
           " rows of tokens but ", lengths ? lengths->size() : 0, " lengths");
  pybind11::array_t<float> logits({a.B, last_only ? int64_t(1) : a.T, vocab});
  a.tokens = tokens.data();
  a.lengths = lengths ? lengths->data() : nullptr;
  a.logits = logits.mutable_data();
  a.last_only = last_only;
  a.cache = cache;
  return logits;
}

// model.forward(a) with the GIL released; hooks (None: none) is the Python dispatch that a
// PyHookSet offers the activations to.
template <class Model, class Args>
void run_forward(const Model& model, Args& a, const pybind11::object& hooks) {
  std::unique_ptr<PyHookSet> hook_set;  // made and destroyed with the GIL held
  if (!hooks.is_none()) hook_set = std::make_unique<PyHookSet>(hooks, model.config().n_layers);
  a.hooks = hook_set.get();
  without_gil([&] { model.forward(a); });
}

}  // namespace gemmacpp::bindings
