// Gemma 4 text models: Gemma's layer (models/gemma/layer.h) with the newer blocks switched on by
// the config: q/k norms and a weightless v norm at attention scale 1, RMSNorms without the +1,
// global layers of their own head shape with proportional RoPE and keys as values, KV sharing,
// per-layer inputs with a token table, double-wide MLPs, experts beside the dense MLP, a scalar
// per layer.
#pragma once

#include <memory>

#include "csrc/io/weights.h"
#include "csrc/nn/config.h"
#include "csrc/nn/text_model.h"

namespace gemmacpp::gemma4 {

// Binds every tensor the config needs (ValueError naming a missing or misshapen one).
std::shared_ptr<nn::TextModel> make_model(nn::ModelConfig config, std::shared_ptr<const WeightFile> weights);

}  // namespace gemmacpp::gemma4
