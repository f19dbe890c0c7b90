// EmbeddingGemma 2: Gemma's layer recipe (models/gemma/layer.h) with the newer blocks the config
// switches on, run as a bidirectional encoder with a per-token projection, under the checkpoint's
// sentence-transformers head (mean pooling and normalisation outside the model, as
// sentence-transformers runs it) or, in a plain HF folder, mean pooling alone.
#pragma once

#include <memory>
#include <string>

#include "csrc/io/json_reader.h"
#include "csrc/nn/text_encoder.h"

namespace gemmacpp::embedding_gemma2 {

std::shared_ptr<nn::TextEncoder> load(const std::string& path, const json::Value& config, const std::string& what);

}  // namespace gemmacpp::embedding_gemma2
