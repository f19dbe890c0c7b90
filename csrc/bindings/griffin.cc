// RecurrentGemma (Griffin) models for Python: load, the config as a dict, forward on an int64
// [B, T] array, and the constant-size cache.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "csrc/bindings/hooks.h"
#include "csrc/bindings/registry.h"
#include "csrc/bindings/sequence_cache.h"
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
                         bool last_only, py::object hooks) {
        GC_CHECK(tokens.ndim() == 2, ValueError, "forward: tokens must be [B, T], got rank ", tokens.ndim());
        GriffinModel::Args a;
        a.B = tokens.shape(0);
        a.T = tokens.shape(1);
        GC_CHECK(!lengths || int64_t(lengths->size()) == a.B, ValueError, "forward: ", a.B,
                 " rows of tokens but ", lengths ? lengths->size() : 0, " lengths");
        py::array_t<float> logits({a.B, last_only ? int64_t(1) : a.T, g.config().vocab});
        a.tokens = tokens.data();
        a.lengths = lengths ? lengths->data() : nullptr;
        a.logits = logits.mutable_data();
        a.last_only = last_only;
        a.cache = cache;
        std::unique_ptr<PyHookSet> hook_set;  // made and destroyed with the GIL held
        if (!hooks.is_none()) hook_set = std::make_unique<PyHookSet>(hooks, g.config().n_layers);
        a.hooks = hook_set.get();
        {
          py::gil_scoped_release nogil;
          g.forward(a);
        }
        return logits;
      }, py::arg("tokens"), py::arg("cache") = py::none(), py::arg("lengths") = py::none(),
         py::arg("last_only") = false, py::arg("hooks") = py::none(),
         "logits [B, T, V] (or [B, 1, V] with last_only) float32 for int64 tokens [B, T], rows "
         "right-padded past lengths[b]; hooks: as for GemmaModel.forward (see gemmacpp.hooks)")
      .def("hook_names", &GriffinModel::hook_names,
           "every hook point's name, in the order a forward reaches them");

  py::class_<GriffinCache, std::shared_ptr<GriffinCache>> cache_class(
      m, "GriffinCache", "RG-LRU and conv states and attention rings: a constant size");
  def_sequence_cache(cache_class);

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
