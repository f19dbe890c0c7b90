#include "csrc/models/gemma/gemma.h"

#include <utility>

#include "csrc/models/gemma/config.h"
#include "csrc/models/gemma/layer.h"
#include "csrc/nn/decoder.h"

namespace gemmacpp::gemma {

std::shared_ptr<nn::TextModel> make_model(nn::ModelConfig config, std::shared_ptr<const WeightFile> weights) {
  config.validate();
  const NameMap names = name_map(config, *weights);
  return std::make_shared<nn::Decoder<GemmaLayer>>(std::move(config), std::move(weights), names);
}

}  // namespace gemmacpp::gemma
