// Gemma models for Python: load, the config as a dict, and forward on an int64 [B, T] array.
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
#include "csrc/models/gemma/gemma.h"

namespace gemmacpp::bindings {
namespace {

namespace py = pybind11;

py::dict config_to_py(const ModelConfig& c) {
  py::dict out = common_config_to_py(c);
  out["attn_softcap"] = float_or_none(c.attn_softcap);
  out["final_softcap"] = float_or_none(c.final_softcap);
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
  py::class_<GemmaModel, GM> model_class(m, "GemmaModel", "A Gemma 1/2/3 text model (use gemmacpp.load)");
  def_text_model<GemmaModel, KVCache>(model_class, config_to_py);
  model_class
      .def("forward", [](const GemmaModel& g, CArray<int64_t> tokens, KVCache* cache,
                         std::optional<std::vector<int64_t>> lengths, bool last_only,
                         std::optional<CArray<float>> embeds, std::optional<CArray<uint8_t>> embed_mask,
                         std::optional<CArray<int64_t>> spans, bool span_in_window,
                         int64_t position_offset, py::object hooks) {
        GemmaModel::Args a;
        py::array_t<float> logits = bind_forward_args(a, tokens, cache, lengths, last_only, g.config().vocab);
        // Vision-language inputs: soft-token rows, bidirectional spans, RoPE position offset.
        GC_CHECK(!embeds == !embed_mask, ValueError, "forward: embeds and embed_mask go together");
        if (embeds) {
          GC_CHECK(embeds->ndim() == 3 && embeds->shape(0) == a.B && embeds->shape(1) == a.T &&
                       embeds->shape(2) == g.config().d, ValueError, "forward: embeds must be [B, T, ",
                   g.config().d, "] for tokens [", a.B, ", ", a.T, "]");
          GC_CHECK(embed_mask->ndim() == 2 && embed_mask->shape(0) == a.B && embed_mask->shape(1) == a.T,
                   ValueError, "forward: embed_mask must be [B, T] like tokens");
          a.embeds = embeds->data();
          a.embed_mask = embed_mask->data();
        }
        if (spans) {
          GC_CHECK(spans->ndim() == 2 && spans->shape(1) == 3, ValueError,
                   "forward: spans must be [n, 3] rows of (row, start, end)");
          a.spans = spans->data();
          a.n_spans = spans->shape(0);
        }
        a.span_in_window = span_in_window;
        a.position_offset = position_offset;
        run_forward(g, a, hooks);
        return logits;
      }, py::arg("tokens"), py::arg("cache") = py::none(), py::arg("lengths") = py::none(),
         py::arg("last_only") = false, py::arg("embeds") = py::none(), py::arg("embed_mask") = py::none(),
         py::arg("spans") = py::none(), py::arg("span_in_window") = true, py::arg("position_offset") = 0,
         py::arg("hooks") = py::none(),
         "logits [B, T, V] (or [B, 1, V] with last_only) float32 for int64 tokens [B, T], rows "
         "right-padded past lengths[b]; hooks: an object with .names that is called as "
         "hooks(name, activation) for each of those hook points (see gemmacpp.hooks)")
      .def("hook_names", [](const GemmaModel& g) { return hook_names(g.config().n_layers); },
           "every hook point's name, in the order a forward reaches them");

  py::class_<KVCache, std::shared_ptr<KVCache>> cache_class(m, "KVCache", "Keys/values of a model's past positions");
  def_sequence_cache(cache_class);

  m.def("load_gemma", [](const std::string& path) { return without_gil([&] { return load_gemma(path); }); },
        py::arg("path"), "Load a Gemma model from a HF checkpoint folder or a .safetensors file");
}

}  // namespace gemmacpp::bindings
