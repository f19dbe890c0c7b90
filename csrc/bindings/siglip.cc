// The SigLIP vision tower and the vision-language projectors for Python (checkpoints come from
// _core.load, bindings/model.cc).
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
#include "csrc/models/siglip/projector.h"
#include "csrc/models/siglip/siglip.h"

namespace gemmacpp::bindings {
namespace {

namespace py = pybind11;
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;
using siglip::Projector;
using siglip::VisionTower;

py::dict vision_config_to_py(const nn::VisionConfig& c) {
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

}  // namespace

GEMMACPP_BINDING(siglip) {
  py::class_<VisionTower, std::shared_ptr<VisionTower>>(m, "VisionTower", "A SigLIP vision tower (use gemmacpp.load)")
      .def("config", [](const VisionTower& s) { return vision_config_to_py(s.config()); })
      .def_property_readonly("path", [](const VisionTower& s) { return s.weights().path; })
      .def("encode", [](const VisionTower& s, F32Array pixels, py::object hooks) {
        const nn::VisionConfig& c = s.config();
        GC_CHECK(pixels.ndim() == 4 && pixels.shape(1) == c.channels && pixels.shape(2) == c.image_size &&
                     pixels.shape(3) == c.image_size && pixels.shape(0) >= 1,
                 ValueError, "encode_image: pixels must be [N, ", c.channels, ", ", c.image_size, ", ",
                 c.image_size, "] float32 with N >= 1");
        const int64_t N = pixels.shape(0);
        py::array_t<float> out({N, c.n_patches(), c.d});
        std::unique_ptr<PyHookSet> hook_set;  // made and destroyed with the GIL held
        if (!hooks.is_none()) hook_set = std::make_unique<PyHookSet>(hooks, s.hook_sites());
        without_gil([&] { s.encode(pixels.data(), N, out.mutable_data(), hook_set.get()); });
        return out;
      }, py::arg("pixels"), py::arg("hooks") = py::none(),
         "last hidden state [N, P, d] float32 for pixels [N, C, S, S]; hooks: an object with "
         ".names (vision hook names) called as hooks(name, activation) (see gemmacpp.hooks)")
      .def("hook_names", [](const VisionTower& s) { return s.hook_sites().names(); },
           "the vision hook points' names, in the order encode reaches them");

  py::class_<Projector, std::shared_ptr<Projector>>(m, "VisionProjector")
      .def_property_readonly("tokens", &Projector::tokens)
      .def_property_readonly("out_dim", &Projector::out_dim)
      .def("project", [](const Projector& p, F32Array features) {
        GC_CHECK(features.ndim() == 3 && features.shape(0) >= 1, ValueError,
                 "project: features must be [N, P, d] float32");
        const int64_t N = features.shape(0);
        py::array_t<float> out({N, p.tokens(), p.out_dim()});
        without_gil([&] { p.project(features.data(), N, out.mutable_data()); });
        return out;
      }, py::arg("features"));
}

}  // namespace gemmacpp::bindings
