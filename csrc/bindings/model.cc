// Gemma models for Python: load, the config as a dict, and forward on an int64 [B, T] array.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "csrc/bindings/registry.h"
#include "csrc/core/error.h"
#include "csrc/models/gemma.h"

namespace gemmacpp::bindings {
namespace {

namespace py = pybind11;

py::dict config_to_py(const ModelConfig& c) {
  py::dict out;
  out["family"] = c.family;
  out["vocab_size"] = c.vocab;
  out["hidden_size"] = c.d;
  out["num_layers"] = c.n_layers;
  out["num_heads"] = c.n_heads;
  out["num_kv_heads"] = c.n_kv_heads;
  out["head_dim"] = c.head_dim;
  out["intermediate_size"] = c.ffn;
  out["norm_eps"] = c.norm_eps;
  out["attn_softcap"] = c.attn_softcap > 0 ? py::object(py::float_(c.attn_softcap)) : py::none();
  out["final_softcap"] = c.final_softcap > 0 ? py::object(py::float_(c.final_softcap)) : py::none();
  out["query_pre_attn_scalar"] = c.query_pre_attn_scalar;
  out["qk_norm"] = c.qk_norm;
  out["sandwich_norms"] = c.sandwich_norms;
  out["embed_scale"] = c.embed_scale;
  out["tied_head"] = c.tied_head;
  py::list layers;
  for (const LayerConfig& l : c.layers) {
    py::dict ld;
    ld["type"] = l.local ? "local" : "global";
    ld["window"] = l.local ? py::object(py::int_(l.window)) : py::none();
    ld["rope_base"] = l.rope_base;
    ld["rope_scale"] = l.rope_scale;
    layers.append(ld);
  }
  out["layers"] = layers;
  return out;
}

}  // namespace

GEMMACPP_BINDING(model) {
  using GM = std::shared_ptr<GemmaModel>;
  py::class_<GemmaModel, GM>(m, "GemmaModel", "A Gemma 1/2/3 text model (use gemmacpp.load)")
      .def("config", [](const GemmaModel& g) { return config_to_py(g.config()); })
      .def_property_readonly("path", [](const GemmaModel& g) { return g.weights().path; })
      .def("new_cache", [](const GemmaModel& g, int64_t batch, int64_t max_len) {
        return std::make_shared<KVCache>(g.config(), batch, max_len);
      }, py::arg("batch"), py::arg("max_len"))
      .def("forward", [](const GemmaModel& g,
                         py::array_t<int64_t, py::array::c_style | py::array::forcecast> tokens,
                         KVCache* cache, bool last_only) {
        GC_CHECK(tokens.ndim() == 2, ValueError, "forward: tokens must be [B, T], got rank ", tokens.ndim());
        const int64_t B = tokens.shape(0), T = tokens.shape(1), V = g.config().vocab;
        py::array_t<float> logits({B, last_only ? int64_t(1) : T, V});
        const int64_t* tp = tokens.data();
        float* lp = logits.mutable_data();
        {
          py::gil_scoped_release nogil;
          g.forward(tp, B, T, lp, cache, last_only);
        }
        return logits;
      }, py::arg("tokens"), py::arg("cache") = py::none(), py::arg("last_only") = false,
      "logits [B, T, V] float32 for int64 tokens [B, T] ([B, 1, V] of the last positions with last_only)");

  py::class_<KVCache, std::shared_ptr<KVCache>>(m, "KVCache", "Keys/values of a model's past positions")
      .def_property_readonly("batch", &KVCache::batch)
      .def_property_readonly("max_len", &KVCache::max_len)
      .def_property_readonly("length", &KVCache::length)
      .def("layer_nbytes", &KVCache::layer_nbytes)
      .def("reset", &KVCache::reset);

  m.def("load_gemma", [](const std::string& path) {
    GM model;
    {
      py::gil_scoped_release nogil;
      model = load_gemma(path);
    }
    return model;
  }, py::arg("path"), "Load a Gemma model from a HF checkpoint folder or a .safetensors file");
}

}  // namespace gemmacpp::bindings
