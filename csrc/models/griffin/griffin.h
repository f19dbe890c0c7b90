// RecurrentGemma (Griffin): the family's layer recipe over the shared blocks (csrc/nn). Each layer
// mixes positions with either a recurrent block or local attention (a per-layer variant), then a
// gated MLP; every projection has a bias except q, k, v without attention_bias. Its config
// reader and tensor-name map are in config.h.
#pragma once

#include <memory>

#include "csrc/io/weights.h"
#include "csrc/nn/config.h"
#include "csrc/nn/text_model.h"

namespace gemmacpp::griffin {

// Binds every tensor the config needs (ValueError naming a missing or misshapen one).
std::shared_ptr<nn::TextModel> make_model(nn::ModelConfig config, std::shared_ptr<const WeightFile> weights);

}  // namespace gemmacpp::griffin
