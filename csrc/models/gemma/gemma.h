// Gemma 1/2/3 text models: the family's layer recipe over the shared blocks (csrc/nn). Its config
// reader and tensor-name maps are in config.h.
#pragma once

#include <memory>

#include "csrc/io/weights.h"
#include "csrc/nn/config.h"
#include "csrc/nn/text_model.h"

namespace gemmacpp::gemma {

// Binds every tensor the config needs (ValueError naming a missing or misshapen one).
std::shared_ptr<nn::TextModel> make_model(nn::ModelConfig config, std::shared_ptr<const WeightFile> weights);

}  // namespace gemmacpp::gemma
