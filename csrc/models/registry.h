// Which model a checkpoint is: the one lookup from a path to a loaded model. Each family is a row
// of the table in registry.cc: its name, the Hugging Face model_types and GGUF architectures it
// reads, and its loader (its config reader, name map and layer recipe do the rest).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "csrc/models/gemma3n/config.h"
#include "csrc/models/siglip/projector.h"
#include "csrc/models/siglip/siglip.h"
#include "csrc/nn/text_encoder.h"
#include "csrc/nn/text_model.h"

namespace gemmacpp::models {

// What a checkpoint holds: a text model, a text encoder (an embedding model), a bare vision tower,
// or a text model and a tower with a projector (a vision-language checkpoint, kind "gemma3" or
// "paligemma").
struct Loaded {
  std::string family;  // the registry row that loaded it
  std::string kind;    // vision-language checkpoints: config.json's model_type; else ""
  std::shared_ptr<nn::TextModel> text;
  std::shared_ptr<nn::TextEncoder> encoder;
  std::shared_ptr<siglip::VisionTower> vision;
  std::shared_ptr<siglip::Projector> projector;
};

// A HF checkpoint folder (config.json + safetensors), a .safetensors file or index next to its
// config.json, or a .gguf file (config from its metadata). ValueError for a missing config or a
// broken file, NotImplementedError for a model_type or architecture no family reads.
// matformer: a Gemma 3n sub-model (models/gemma3n/config.h); NotImplementedError for other families.
Loaded load(const std::string& path, const gemma3n::MatFormer& matformer = {});

// "family: hf model_types / gguf architectures" per row, for docs and messages.
std::vector<std::string> families();

}  // namespace gemmacpp::models
