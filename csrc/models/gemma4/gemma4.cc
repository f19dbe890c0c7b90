#include "csrc/models/gemma4/gemma4.h"

#include <utility>

#include "csrc/core/dtype.h"
#include "csrc/models/gemma/layer.h"
#include "csrc/models/gemma4/config.h"
#include "csrc/nn/decoder.h"

namespace gemmacpp::gemma4 {
std::shared_ptr<nn::TextModel> make_model(nn::ModelConfig config, std::shared_ptr<const WeightFile> weights) {
  config.validate();
  const NameMap names = name_map(config, *weights);
  // transformers scales an embedding by its factor in the table's dtype (bfloat16 rounds
  // sqrt(1536) = 39.19 to 39.25); llama.cpp scales GGUF tables in float32.
  if (weights->format != "gguf") {
    if (const WeightTensor* t = weights->find(names.stored("embed.weight"))) {
      config.embed_scale = round_to(t->dtype, config.embed_scale);
    }
    if (const WeightTensor* t = weights->find(names.stored("per_layer_embed.weight"))) {
      config.per_layer_embed_scale = round_to(t->dtype, config.per_layer_embed_scale);
    }
  }
  return std::make_shared<nn::Decoder<gemma::GemmaLayer>>(std::move(config), std::move(weights), names);
}

}  // namespace gemmacpp::gemma4
