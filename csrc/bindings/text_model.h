// The Python face shared by the text models (GemmaModel, GriffinModel): the config as a dict
// (the keys every family has; each binding adds its own), the checkpoint path and new_cache.
// Their forwards differ in arguments and share bindings/forward_args.h.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>

#include "csrc/nn/config.h"

namespace gemmacpp::bindings {

// family, vocab_size, hidden_size, num_layers, num_heads, num_kv_heads, head_dim,
// intermediate_size, norm_eps, in that order.
pybind11::dict common_config_to_py(const ModelConfig& c);

// x, or None where x is 0 (a softcap that is off).
inline pybind11::object float_or_none(double x) {
  return x > 0 ? pybind11::object(pybind11::float_(x)) : pybind11::none();
}

// config() from config_to_py, path, and new_cache(batch, max_len) making a Cache.
template <class Model, class Cache, class ConfigToPy>
void def_text_model(pybind11::class_<Model, std::shared_ptr<Model>>& cls, ConfigToPy config_to_py) {
  namespace py = pybind11;
  cls.def("config", [config_to_py](const Model& g) { return config_to_py(g.config()); })
      .def_property_readonly("path", [](const Model& g) { return g.weights().path; })
      .def("new_cache", [](const Model& g, int64_t batch, int64_t max_len) {
        return std::make_shared<Cache>(g.config(), batch, max_len);
      }, py::arg("batch"), py::arg("max_len"));
}

}  // namespace gemmacpp::bindings
