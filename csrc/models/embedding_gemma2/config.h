// EmbeddingGemma 2's text encoder configuration, from a Hugging Face config.json (model_type
// embedding_gemma2_text, or the text_config of an embedding_gemma2 checkpoint), and the tensor-name
// map of its checkpoints. It is Gemma's layer with the newer families' blocks: RMSNorms without
// the +1, q/k norms and a weightless v norm with attention scale 1, global layers of their own
// head_dim and key/value heads, a symmetric window given as a radius, per-layer inputs (the
// projection alone), a scalar per layer, and a per-token projection to embedding_dim.
#pragma once

#include <string>

#include "csrc/io/json_reader.h"
#include "csrc/io/weight_binder.h"
#include "csrc/io/weights.h"
#include "csrc/nn/config.h"

namespace gemmacpp::embedding_gemma2 {

nn::ModelConfig config_from_hf(const json::Value& root, const std::string& what);
// The canonical names as `f` stores them: below the text model's prefix ("" for a saved
// EmbeddingGemma2TextModel, "language_model." inside an EmbeddingGemma2Model).
NameMap name_map(const WeightFile& f);

}  // namespace gemmacpp::embedding_gemma2
