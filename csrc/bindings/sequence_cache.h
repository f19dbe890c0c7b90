// The Python face shared by the models' caches (KVCache, GriffinCache): both hold a batch of
// sequences, each with its own length, and can be copied or forked sequence by sequence.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <vector>

#include "csrc/core/error.h"

namespace gemmacpp::bindings {

template <class Cache>
void def_sequence_cache(pybind11::class_<Cache, std::shared_ptr<Cache>>& cls) {
  namespace py = pybind11;
  cls.def_property_readonly("batch", &Cache::batch)
      .def_property_readonly("max_len", &Cache::max_len)
      .def_property_readonly("lengths", &Cache::lengths, "positions held, per sequence")
      .def_property_readonly("length", [](const Cache& c) {
        const auto& n = c.lengths();
        for (int64_t x : n) {
          GC_CHECK(x == n[0], ValueError, "cache.length: its sequences have different lengths ",
                   "(use cache.lengths)");
        }
        return n[0];
      }, "positions held by every sequence (they must all have the same length)")
      .def_property_readonly("nbytes", &Cache::nbytes)
      .def("layer_nbytes", &Cache::layer_nbytes)
      .def("reset", &Cache::reset)
      .def("select", [](const Cache& c, const std::vector<int64_t>& sequences) {
        return std::make_shared<Cache>(c.select(sequences));
      }, py::arg("sequences"), "a new cache with copies of these sequences, in this order (repeats allowed)")
      .def("copy", [](const Cache& c) {
        std::vector<int64_t> all(size_t(c.batch()));
        for (size_t i = 0; i < all.size(); ++i) all[i] = int64_t(i);
        return std::make_shared<Cache>(c.select(all));
      });
}

}  // namespace gemmacpp::bindings
