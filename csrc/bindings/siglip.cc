// The SigLIP vision tower, vision projectors and multimodal (Gemma 3 / PaliGemma) checkpoints.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "csrc/bindings/hooks.h"
#include "csrc/bindings/registry.h"
#include "csrc/bindings/without_gil.h"
#include "csrc/core/error.h"
#include "csrc/models/multimodal/multimodal.h"
#include "csrc/models/siglip/siglip.h"

namespace gemmacpp::bindings {
namespace {

namespace py = pybind11;
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

py::dict vision_config_to_py(const VisionConfig& c) {
  py::dict out;
  out["family"] = "siglip";
  out["hidden_size"] = c.d;
  out["num_layers"] = c.n_layers;
  out["num_heads"] = c.n_heads;
  out["head_dim"] = c.head_dim;
  out["intermediate_size"] = c.ffn;
  out["image_size"] = c.image_size;
  out["patch_size"] = c.patch;
  out["num_channels"] = c.channels;
  out["num_patches"] = c.n_patches();
  out["norm_eps"] = c.norm_eps;
  return out;
}

// The vision tower's hooks for Python, as PyHookSet is the text forward's: dispatch.names are the
// vision hook names to offer (ValueError for any other), dispatch(name, array) gets each one.
// Made and destroyed with the GIL held; the GIL is taken only around a call.
class PyVisionHookSet : public VisionHookSet {
 public:
  PyVisionHookSet(py::object dispatch, int64_t n_layers)
      : dispatch_(std::move(dispatch)), wanted_(size_t(n_layers), 0) {
    for (const std::string& name : dispatch_.attr("names").cast<std::vector<std::string>>()) {
      VisionHookPoint p = VisionHookPoint::kOut;
      int64_t layer = -1;
      GC_CHECK(parse_vision_hook_name(name, n_layers, &p, &layer), ValueError,
               "no vision hook point named '", name, "' (see model.hook_names())");
      if (p == VisionHookPoint::kOut) {
        want_out_ = true;
      } else {
        wanted_[size_t(layer)] = 1;
      }
    }
  }

  bool wants(VisionHookPoint point, int64_t layer) const override {
    return point == VisionHookPoint::kOut ? want_out_ : wanted_[size_t(layer)] != 0;
  }

  void call(VisionHookPoint point, int64_t layer, float* data, const std::vector<int64_t>& shape) override {
    py::gil_scoped_acquire gil;
    offer_view(dispatch_, vision_hook_name(point, layer), data, shape);
  }

 private:
  py::object dispatch_;
  std::vector<char> wanted_;  // per layer: vision.blocks.{i}.hook_resid_post
  bool want_out_ = false;
};

}  // namespace

GEMMACPP_BINDING(siglip) {
  using SM = std::shared_ptr<SiglipModel>;
  py::class_<SiglipModel, SM>(m, "SiglipModel", "A SigLIP vision tower (use gemmacpp.load)")
      .def("config", [](const SiglipModel& s) { return vision_config_to_py(s.config()); })
      .def_property_readonly("path", [](const SiglipModel& s) { return s.weights().path; })
      .def("encode", [](const SiglipModel& s, F32Array pixels, py::object hooks) {
        const VisionConfig& c = s.config();
        GC_CHECK(pixels.ndim() == 4 && pixels.shape(1) == c.channels && pixels.shape(2) == c.image_size &&
                     pixels.shape(3) == c.image_size && pixels.shape(0) >= 1,
                 ValueError, "encode_image: pixels must be [N, ", c.channels, ", ", c.image_size, ", ",
                 c.image_size, "] float32 with N >= 1");
        const int64_t N = pixels.shape(0);
        py::array_t<float> out({N, c.n_patches(), c.d});
        std::unique_ptr<PyVisionHookSet> hook_set;
        if (!hooks.is_none()) hook_set = std::make_unique<PyVisionHookSet>(hooks, c.n_layers);
        without_gil([&] { s.encode(pixels.data(), N, out.mutable_data(), hook_set.get()); });
        return out;
      }, py::arg("pixels"), py::arg("hooks") = py::none(),
         "last hidden state [N, P, d] float32 for pixels [N, C, S, S]; hooks: an object with "
         ".names (vision hook names) called as hooks(name, activation) (see gemmacpp.hooks)")
      .def("hook_names", [](const SiglipModel& s) { return vision_hook_names(s.config().n_layers); },
           "the vision hook points' names, in the order encode reaches them");

  py::class_<VisionProjector, std::shared_ptr<VisionProjector>>(m, "VisionProjector")
      .def_property_readonly("tokens", &VisionProjector::tokens)
      .def_property_readonly("out_dim", &VisionProjector::out_dim)
      .def("project", [](const VisionProjector& p, F32Array features) {
        GC_CHECK(features.ndim() == 3 && features.shape(0) >= 1, ValueError,
                 "project: features must be [N, P, d] float32");
        const int64_t N = features.shape(0);
        py::array_t<float> out({N, p.tokens(), p.out_dim()});
        without_gil([&] { p.project(features.data(), N, out.mutable_data()); });
        return out;
      }, py::arg("features"));

  m.def("load_siglip", [](const std::string& path) { return without_gil([&] { return load_siglip(path); }); },
        py::arg("path"), "Load a SiglipVisionModel from a HF checkpoint folder or .safetensors file");

  m.def("load_multimodal", [](const std::string& path, int64_t tokens_per_image) {
    const MultimodalModel mm = without_gil([&] { return load_multimodal(path, tokens_per_image); });
    return py::make_tuple(mm.text, mm.vision, mm.projector);
  }, py::arg("path"), py::arg("tokens_per_image"),
     "(text GemmaModel, SiglipModel, VisionProjector) of a Gemma 3 / PaliGemma checkpoint");
}

}  // namespace gemmacpp::bindings
