// Gemma 1/2/3 configurations: from a Hugging Face config.json (model_type gemma, gemma2,
// gemma3_text, or the text_config of a gemma3 / paligemma checkpoint) or from GGUF metadata
// (general.architecture gemma, gemma2, gemma3, as llama.cpp writes it), and the tensor-name maps
// of both formats.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "csrc/io/json_reader.h"
#include "csrc/io/weight_binder.h"
#include "csrc/io/weights.h"
#include "csrc/nn/config.h"

namespace gemmacpp::gemma {

// `what` names the source in errors.
nn::ModelConfig config_from_hf(const json::Value& root, const std::string& what);
nn::ModelConfig config_from_gguf(const WeightFile& f);

// The canonical weight names (embed.weight, blocks.{i}.attn.q.weight, ...) as `f` stores them:
// HF names below the text model's prefix, or llama.cpp's GGUF names.
NameMap name_map(const nn::ModelConfig& c, const WeightFile& f);

// llama.cpp's names of the tensors every Gemma text model has (the embedding, a layer's norms,
// attention and MLP, the final norm); the newer families add theirs.
std::vector<std::pair<std::string, std::string>> gguf_names();

}  // namespace gemmacpp::gemma
