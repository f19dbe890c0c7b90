#include "csrc/models/gemma4/gemma4.h"

#include <utility>

#include "csrc/models/gemma/layer.h"
#include "csrc/models/gemma4/config.h"
#include "csrc/nn/decoder.h"

namespace gemmacpp::gemma4 {
std::shared_ptr<nn::TextModel> make_model(nn::ModelConfig config, std::shared_ptr<const WeightFile> weights) {
  config.validate();
  const NameMap names = name_map(config, *weights);
  return std::make_shared<nn::Decoder<gemma::GemmaLayer>>(std::move(config), std::move(weights), names);
}

}  // namespace gemmacpp::gemma4
