// Where a checkpoint's files are. A Hugging Face checkpoint is a folder (config.json, safetensors
// shards, tokenizer.json, preprocessor_config.json); a weights file may also be named directly, its
// side files then lie beside it. A GGUF file holds everything itself. Every reader that looks for
// a side file asks here, so the rules exist once.
#pragma once

#include <string>
#include <vector>

#include "csrc/io/json_reader.h"

namespace gemmacpp::checkpoint {

bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);
bool ends_with(const std::string& s, const std::string& suffix);
// By its name: a .gguf file (the readers still check the magic).
bool is_gguf(const std::string& path);

// The checkpoint's folder: path itself when it is one, else the folder the file lies in ("." for
// a bare file name).
std::string folder_of(const std::string& path);
// A side file of the checkpoint at path: folder_of(path) + "/" + name.
std::string side_file(const std::string& path, const std::string& name);

// A sentence-transformers folder's modules.json, in order: each module's class (its last name:
// Transformer, Pooling, Dense, Normalize, ...) and folder (relative; "" for the folder itself).
// Empty when the folder has none.
struct SentenceModule {
  std::string type, path;
};
std::vector<SentenceModule> sentence_transformers_modules(const std::string& folder);

// Where the Hugging Face model of a checkpoint lies: a sentence-transformers folder's Transformer
// module folder (usually the folder itself), any other folder itself, a file as it is.
std::string model_path(const std::string& path);

// The whole file as bytes; ValueError "cannot open '<path>'".
std::string read_file(const std::string& path);

// A parsed JSON file; errors name the file ("'<path>'"), which `what` receives for later messages.
json::Value read_json_file(const std::string& path, std::string* what = nullptr);

}  // namespace gemmacpp::checkpoint
