// RecurrentGemma (Griffin) models for Python: load, the config as a dict, forward on an int64
// [B, T] array, and the constant-size cache.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "csrc/bindings/registry.h"
#include "csrc/core/error.h"
#include "csrc/models/griffin.h"

namespace gemmacpp::bindings {
namespace {

namespace py = pybind11;

py::dict griffin_config_to_py(const ModelConfig& c) {
  py::dict out;
  out["family"] = c.family;
  out["vocab_size"] = c.vocab;
  out["hidden_size"] = c.d;
  out["num_layers"] = c.n_layers;
  out["num_heads"] = c.n_heads;
  out["num_kv_heads"] = c.n_kv_heads;
  out["head_dim"] = c.head_dim;
  out["intermediate_size"] = c.ffn;  // the MLP's real hidden size
  out["norm_eps"] = c.norm_eps;
  out["final_softcap"] = c.final_softcap > 0 ? py::object(py::float_(c.final_softcap)) : py::none();
  out["embed_scale"] = c.embed_scale;
  out["lru_width"] = c.lru_width;
  out["conv1d_width"] = c.conv1d_width;
  out["rotary_dim"] = c.rotary_dim;
  out["attention_bias"] = c.attn_bias;
  py::list layers;
  for (const LayerConfig& l : c.layers) {
    py::dict ld;
    ld["type"] = l.recurrent ? "recurrent" : "local";
    ld["window"] = l.recurrent ? py::none() : py::object(py::int_(l.window));
    ld["rope_base"] = l.recurrent ? py::none() : py::object(py::float_(l.rope_base));
    layers.append(ld);
  }
  out["layers"] = layers;
  return out;
}

}  // namespace

GEMMACPP_BINDING(griffin) {
  using GM = std::shared_ptr<GriffinModel>;
  py::class_<GriffinModel, GM>(m, "GriffinModel", "A RecurrentGemma model (use gemmacpp.load)")
      .def("config", [](const GriffinModel& g) { return griffin_config_to_py(g.config()); })
      .def_property_readonly("path", [](const GriffinModel& g) { return g.weights().path; })
      .def("new_cache", [](const GriffinModel& g, int64_t batch, int64_t max_len) {
        return std::make_shared<GriffinCache>(g.config(), batch, max_len);
      }, py::arg("batch"), py::arg("max_len"))
      .def("forward", [](const GriffinModel& g,
                         py::array_t<int64_t, py::array::c_style | py::array::forcecast> tokens,
                         GriffinCache* cache, std::optional<std::vector<int64_t>> lengths,
                         bool last_only) {
        GC_CHECK(tokens.ndim() == 2, ValueError, "forward: tokens must be [B, T], got rank ", tokens.ndim());
        const int64_t B = tokens.shape(0), T = tokens.shape(1), V = g.config().vocab;
        if (lengths) {
          GC_CHECK(int64_t(lengths->size()) == B, ValueError, "forward: ", B, " rows of tokens but ",
                   lengths->size(), " lengths");
          for (int64_t n : *lengths) {
            GC_CHECK(n == T, NotImplementedError, "forward: RecurrentGemma takes rows of equal "
                     "length only so far (no padded batches), got lengths with ", n, " != ", T);
          }
        }
        py::array_t<float> logits({B, last_only ? int64_t(1) : T, V});
        const int64_t* tp = tokens.data();
        float* lp = logits.mutable_data();
        {
          py::gil_scoped_release nogil;
          g.forward(tp, B, T, lp, cache, last_only);
        }
        return logits;
      }, py::arg("tokens"), py::arg("cache") = py::none(), py::arg("lengths") = py::none(),
         py::arg("last_only") = false,
         "logits [B, T, V] (or [B, 1, V] with last_only) float32 for int64 tokens [B, T]");

  py::class_<GriffinCache, std::shared_ptr<GriffinCache>>(
      m, "GriffinCache", "RG-LRU and conv states and attention rings: a constant size")
      .def_property_readonly("batch", &GriffinCache::batch)
      .def_property_readonly("max_len", &GriffinCache::max_len)
      .def_property_readonly("length", &GriffinCache::length)
      .def_property_readonly("lengths", [](const GriffinCache& c) {
        return std::vector<int64_t>(size_t(c.batch()), c.length());
      }, "positions held, per sequence (all equal)")
      .def_property_readonly("nbytes", &GriffinCache::nbytes)
      .def("layer_nbytes", &GriffinCache::layer_nbytes)
      .def("reset", &GriffinCache::reset);

  m.def("load_griffin", [](const std::string& path) {
    GM model;
    {
      py::gil_scoped_release nogil;
      model = load_griffin(path);
    }
    return model;
  }, py::arg("path"), "Load a RecurrentGemma model from a HF checkpoint folder or a .safetensors file");
}

}  // namespace gemmacpp::bindings
