#include "csrc/models/embedding_gemma2/embedding_gemma2.h"

#include <utility>

#include "csrc/io/checkpoint.h"
#include "csrc/models/embedding_gemma/config.h"
#include "csrc/models/embedding_gemma2/config.h"
#include "csrc/models/gemma/layer.h"

namespace gemmacpp::embedding_gemma2 {

std::shared_ptr<nn::TextEncoder> load(const std::string& path, const json::Value& config, const std::string& what) {
  nn::ModelConfig c = config_from_hf(config, what);
  auto weights = std::make_shared<const WeightFile>(open_weights(checkpoint::model_path(path)));
  const NameMap names = name_map(*weights);
  nn::SentenceHeadSpec head = embedding_gemma::head_from_folder(checkpoint::folder_of(path));
  return std::make_shared<nn::SentenceEncoder<gemma::GemmaLayer>>(std::move(c), std::move(weights), names,
                                                                  std::move(head));
}

}  // namespace gemmacpp::embedding_gemma2
