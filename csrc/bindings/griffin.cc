// RecurrentGemma (Griffin) models for Python: load, the config as a dict, forward on an int64
// [B, T] array, and the constant-size cache.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "csrc/bindings/forward_args.h"
#include "csrc/bindings/registry.h"
#include "csrc/bindings/sequence_cache.h"
#include "csrc/bindings/text_model.h"
#include "csrc/bindings/without_gil.h"
#include "csrc/core/error.h"
#include "csrc/models/griffin/griffin.h"

namespace gemmacpp::bindings {
namespace {

namespace py = pybind11;

py::dict griffin_config_to_py(const ModelConfig& c) {
  py::dict out = common_config_to_py(c);
  out["final_softcap"] = float_or_none(c.final_softcap);
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
  py::class_<GriffinModel, GM> model_class(m, "GriffinModel", "A RecurrentGemma model (use gemmacpp.load)");
  def_text_model<GriffinModel, GriffinCache>(model_class, griffin_config_to_py);
  model_class
      .def("forward", [](const GriffinModel& g, CArray<int64_t> tokens, GriffinCache* cache,
                         std::optional<std::vector<int64_t>> lengths, bool last_only, py::object hooks) {
        GriffinModel::Args a;
        py::array_t<float> logits = bind_forward_args(a, tokens, cache, lengths, last_only, g.config().vocab);
        run_forward(g, a, hooks);
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

  m.def("load_griffin", [](const std::string& path) { return without_gil([&] { return load_griffin(path); }); },
        py::arg("path"), "Load a RecurrentGemma model from a HF checkpoint folder or a .safetensors file");
}

}  // namespace gemmacpp::bindings
