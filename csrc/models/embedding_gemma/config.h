// EmbeddingGemma's sentence pipeline: which head follows the Gemma 3 encoder. From a
// sentence-transformers folder (modules.json: Transformer, Pooling, Dense..., Normalize, each
// module's config.json and weights in its folder), or from a gemma-embedding GGUF file (dense_2,
// dense_3 in the file, mean pooling, normalised, as llama.cpp runs it). A plain HF folder without
// modules.json gets mean pooling alone.
#pragma once

#include <memory>
#include <string>

#include "csrc/io/weights.h"
#include "csrc/nn/config.h"
#include "csrc/nn/sentence_head.h"

namespace gemmacpp::embedding_gemma {

nn::SentenceHeadSpec head_from_folder(const std::string& folder);
nn::SentenceHeadSpec head_from_gguf(const std::shared_ptr<const WeightFile>& f);

}  // namespace gemmacpp::embedding_gemma
