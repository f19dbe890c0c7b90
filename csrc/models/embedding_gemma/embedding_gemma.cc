#include "csrc/models/embedding_gemma/embedding_gemma.h"

#include <utility>

#include "csrc/core/error.h"
#include "csrc/io/checkpoint.h"
#include "csrc/models/embedding_gemma/config.h"
#include "csrc/models/gemma/config.h"
#include "csrc/models/gemma/layer.h"

namespace gemmacpp::embedding_gemma {
namespace {

std::shared_ptr<nn::TextEncoder> make(nn::ModelConfig c, std::shared_ptr<const WeightFile> weights,
                                      nn::SentenceHeadSpec head) {
  GC_CHECK(c.bidirectional, ValueError, "'", weights->path,
           "': an embedding model needs use_bidirectional_attention in its config");
  c.validate();
  const NameMap names = gemma::name_map(c, *weights);
  return std::make_shared<nn::SentenceEncoder<gemma::GemmaLayer>>(std::move(c), std::move(weights), names,
                                                                  std::move(head));
}

}  // namespace

std::shared_ptr<nn::TextEncoder> load(const std::string& path, const json::Value& config, const std::string& what) {
  nn::ModelConfig c = gemma::config_from_hf(config, what);
  auto weights = std::make_shared<const WeightFile>(open_weights(checkpoint::model_path(path)));
  return make(std::move(c), std::move(weights), head_from_folder(checkpoint::folder_of(path)));
}

std::shared_ptr<nn::TextEncoder> load_gguf(std::shared_ptr<const WeightFile> file) {
  nn::ModelConfig c = gemma::config_from_gguf(*file);
  nn::SentenceHeadSpec head = head_from_gguf(file);
  return make(std::move(c), std::move(file), std::move(head));
}

}  // namespace gemmacpp::embedding_gemma
