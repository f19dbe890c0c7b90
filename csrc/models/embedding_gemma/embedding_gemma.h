// EmbeddingGemma (1): Gemma 3 run as a bidirectional encoder (its own layer recipe, GemmaLayer,
// with the config's use_bidirectional_attention) under a sentence-transformers head. Loaded from a
// sentence-transformers folder, a plain HF folder, or a gemma-embedding GGUF file.
#pragma once

#include <memory>
#include <string>

#include "csrc/io/json_reader.h"
#include "csrc/io/weights.h"
#include "csrc/nn/text_encoder.h"

namespace gemmacpp::embedding_gemma {

// path: a checkpoint folder (its HF model may lie in a sentence-transformers module folder) or a
// weights file beside its config.json; config: the model's parsed config.json.
std::shared_ptr<nn::TextEncoder> load(const std::string& path, const json::Value& config, const std::string& what);
std::shared_ptr<nn::TextEncoder> load_gguf(std::shared_ptr<const WeightFile> file);

}  // namespace gemmacpp::embedding_gemma
