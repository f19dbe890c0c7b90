// Encoder<Layer>: the layer loop of an encoder, over inputs whose rows all see each other within
// their sequence (an image's patches), with no cache. Like Decoder<Layer>, a family supplies the
// layer recipe; its model adds the input embedding in front and the output head behind:
//
//   struct Layer {
//     Layer(const Config& c, int64_t index, const Scope& s);   // s: "<root>blocks.{index}."
//     void operator()(const Forward& f, const Residual& r) const;
//   };
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "csrc/nn/forward.h"
#include "csrc/nn/residual.h"
#include "csrc/nn/scope.h"

namespace gemmacpp::nn {

template <class Layer>
class Encoder {
 public:
  template <class Config>
  Encoder(const Config& c, int64_t n_layers, const Scope& root) {
    layers_.reserve(size_t(n_layers));
    for (int64_t i = 0; i < n_layers; ++i) layers_.emplace_back(c, i, root.sub("blocks." + std::to_string(i)));
  }

  void operator()(const Forward& f, const Residual& r) const {
    for (const Layer& layer : layers_) layer(f, r);
  }

 private:
  std::vector<Layer> layers_;
};

}  // namespace gemmacpp::nn
