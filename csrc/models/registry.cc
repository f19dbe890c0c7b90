#include "csrc/models/registry.h"

#include <utility>

#include "csrc/core/error.h"
#include "csrc/io/checkpoint.h"
#include "csrc/models/embedding_gemma/embedding_gemma.h"
#include "csrc/models/embedding_gemma2/embedding_gemma2.h"
#include "csrc/models/gemma/config.h"
#include "csrc/models/gemma/gemma.h"
#include "csrc/models/gemma3n/config.h"
#include "csrc/models/gemma3n/gemma3n.h"
#include "csrc/models/gemma4/config.h"
#include "csrc/models/gemma4/gemma4.h"
#include "csrc/models/griffin/config.h"
#include "csrc/models/griffin/griffin.h"
#include "csrc/models/multimodal/multimodal.h"

namespace gemmacpp::models {
namespace {

// Where a checkpoint's config came from: config.json (HF) or the GGUF file's metadata.
struct Source {
  std::string path;          // as the caller gave it
  std::string weights_path;  // where the HF model's weights are (a sentence-transformers module folder)
  std::string what;
  const json::Value* config = nullptr;             // HF
  std::shared_ptr<const WeightFile> gguf;          // GGUF
  gemma3n::MatFormer matformer;                    // a sub-model, where asked for
};

struct Family {
  const char* name;
  std::vector<std::string> hf_model_types;
  std::vector<std::string> gguf_architectures;
  bool (*accepts)(const Source&);  // nullptr: every checkpoint of those types
  Loaded (*load)(const Source&);
};

bool has_vision_config(const Source& s) { return s.config->get("vision_config") != nullptr; }
bool is_bidirectional(const Source& s) {
  return s.gguf || json::Reader{*s.config, s.what}.flag_or("use_bidirectional_attention", false);
}

Loaded load_gemma(const Source& s) {
  Loaded out;
  if (s.gguf) {
    out.text = gemma::make_model(gemma::config_from_gguf(*s.gguf), s.gguf);
  } else {
    nn::ModelConfig c = gemma::config_from_hf(*s.config, s.what);
    out.text = gemma::make_model(std::move(c), std::make_shared<const WeightFile>(open_weights(s.weights_path)));
  }
  return out;
}

Loaded load_gemma4(const Source& s) {
  Loaded out;
  if (s.gguf) {
    out.text = gemma4::make_model(gemma4::config_from_gguf(*s.gguf), s.gguf);
  } else {
    nn::ModelConfig c = gemma4::config_from_hf(*s.config, s.what);
    out.text = gemma4::make_model(std::move(c), std::make_shared<const WeightFile>(open_weights(s.weights_path)));
  }
  return out;
}

Loaded load_gemma3n(const Source& s) {
  Loaded out;
  if (s.gguf) {
    nn::ModelConfig c = gemma3n::config_from_gguf(*s.gguf);
    if (!s.matformer.empty()) {
      c = gemma3n::slice(c, s.matformer);
      gemma3n::read_sparsely(*s.gguf);
    }
    out.text = gemma3n::make_model(std::move(c), s.gguf);
  } else {
    nn::ModelConfig c = gemma3n::config_from_hf(*s.config, s.what);
    if (!s.matformer.empty()) c = gemma3n::slice(c, s.matformer);
    auto weights = std::make_shared<const WeightFile>(open_weights(s.weights_path));
    if (!s.matformer.empty()) gemma3n::read_sparsely(*weights);
    out.text = gemma3n::make_model(std::move(c), std::move(weights));
  }
  return out;
}

Loaded load_embedding_gemma2(const Source& s) {
  Loaded out;
  out.encoder = embedding_gemma2::load(s.path, *s.config, s.what);
  return out;
}

Loaded load_embedding_gemma(const Source& s) {
  Loaded out;
  out.encoder = s.gguf ? embedding_gemma::load_gguf(s.gguf) : embedding_gemma::load(s.path, *s.config, s.what);
  return out;
}

Loaded load_griffin(const Source& s) {
  Loaded out;
  nn::ModelConfig c = griffin::config_from_hf(*s.config, s.what);
  out.text = griffin::make_model(std::move(c), std::make_shared<const WeightFile>(open_weights(s.weights_path)));
  return out;
}

Loaded load_vision_language(const Source& s) {
  multimodal::Parts p = multimodal::load(s.path, *s.config, s.what);
  Loaded out;
  out.kind = p.kind;
  out.text = std::move(p.text);
  out.vision = std::move(p.vision);
  out.projector = std::move(p.projector);
  return out;
}

Loaded load_siglip(const Source& s) {
  Loaded out;
  out.vision = siglip::load(s.path, *s.config, s.what);
  return out;
}

// First match wins: a gemma3 config with a vision_config is the vision-language model, without
// one its text_config is read as a text model; a gemma3_text config with bidirectional attention
// is EmbeddingGemma's encoder.
const std::vector<Family>& table() {
  static const std::vector<Family> rows = {
      {"gemma3_vision", {"gemma3"}, {}, has_vision_config, load_vision_language},
      {"paligemma", {"paligemma"}, {}, nullptr, load_vision_language},
      {"embedding_gemma", {"gemma3_text"}, {"gemma-embedding"}, is_bidirectional, load_embedding_gemma},
      {"embedding_gemma2", {"embedding_gemma2_text", "embedding_gemma2"}, {}, nullptr, load_embedding_gemma2},
      {"gemma", {"gemma", "gemma2", "gemma3_text", "gemma3"}, {"gemma", "gemma2", "gemma3"}, nullptr, load_gemma},
      {"gemma3n", {"gemma3n_text", "gemma3n"}, {"gemma3n"}, nullptr, load_gemma3n},
      {"gemma4", {"gemma4_text", "gemma4"}, {"gemma4"}, nullptr, load_gemma4},
      {"recurrent_gemma", {"recurrent_gemma"}, {}, nullptr, load_griffin},
      {"siglip", {"siglip_vision_model"}, {}, nullptr, load_siglip},
  };
  return rows;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  for (const std::string& s : v)
    if (s == x) return true;
  return false;
}

std::string known(bool gguf) {
  std::string out;
  for (const Family& f : table()) {
    for (const std::string& t : gguf ? f.gguf_architectures : f.hf_model_types) {
      if (out.find("'" + t + "'") == std::string::npos) out += (out.empty() ? "'" : ", '") + t + "'";
    }
  }
  return out;
}

// Layer counts well beyond any Gemma's are checked against the tensors present before a family
// builds per-layer structures: every layer has tensors of its own, so a count above the file's
// tensor count is a corrupt or hostile config, and believing it costs gigabytes of bookkeeping.
constexpr uint64_t kCheckedLayers = 256;

void check_layer_count(uint64_t n_layers, const char* key, const Source& s) {
  if (n_layers <= kCheckedLayers) return;
  std::shared_ptr<const WeightFile> w = s.gguf;
  if (!w) w = std::make_shared<const WeightFile>(open_weights(s.weights_path));
  GC_CHECK(n_layers <= w->tensors.size(), ValueError, s.what, ": ", key, " is ", n_layers,
           " but the checkpoint holds only ", w->tensors.size(), " tensors");
}

void check_layer_counts(const Source& s) {
  if (s.gguf) {
    const std::string suffix = ".block_count";
    for (const auto& [key, value] : s.gguf->metadata) {
      if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0 &&
          value.is_integer() && value.as_int() > 0)
        check_layer_count(uint64_t(value.as_int()), key.c_str(), s);
    }
    return;
  }
  // The model's own count, and its text and vision towers' in a multimodal config.
  for (const json::Value* obj : {s.config, s.config->get("text_config"), s.config->get("vision_config")}) {
    if (!obj || obj->kind != json::Value::Kind::kObject) continue;
    const json::Value* n = obj->get("num_hidden_layers");
    if (n && n->is_uint()) check_layer_count(n->magnitude, "num_hidden_layers", s);
  }
}

}  // namespace

Loaded load(const std::string& path, const gemma3n::MatFormer& matformer) {
  Source s;
  s.path = path;
  s.matformer = matformer;
  s.weights_path = checkpoint::model_path(path);
  json::Value config;
  std::string key;
  bool gguf = checkpoint::is_gguf(path);
  if (gguf) {
    s.gguf = std::make_shared<const WeightFile>(open_weights(path));
    s.what = "'" + s.gguf->path + "'";
    const MetaValue* arch = s.gguf->meta("general.architecture");
    GC_CHECK(arch && arch->type == MetaValue::Type::kString, ValueError, s.what, ": no general.architecture string");
    key = arch->as_string();
  } else {
    // A HF checkpoint's config comes first, so that a folder without one says so.
    const std::string config_path = checkpoint::is_directory(path) ? s.weights_path + "/config.json"
                                                                   : checkpoint::side_file(path, "config.json");
    config = checkpoint::read_json_file(config_path, &s.what);
    GC_CHECK(config.kind == json::Value::Kind::kObject, ValueError, s.what, ": not a JSON object");
    s.config = &config;
    key = json::Reader{config, s.what}.string_or("model_type", "");
  }
  check_layer_counts(s);
  for (const Family& f : table()) {
    if (!contains(gguf ? f.gguf_architectures : f.hf_model_types, key)) continue;
    if (f.accepts && !f.accepts(s)) continue;
    GC_CHECK(matformer.empty() || std::string(f.name) == "gemma3n", NotImplementedError, s.what,
             ": matformer slices Gemma 3n models only; this is a ", f.name, " checkpoint");
    Loaded out = f.load(s);
    out.family = f.name;
    return out;
  }
  throw NotImplementedError(str_cat(s.what, ": ", gguf ? "architecture" : "model_type", " '", key,
                                    "' is not a model gemmacpp runs (it reads ", known(gguf), ")"));
}

std::vector<std::string> families() {
  std::vector<std::string> out;
  for (const Family& f : table()) {
    std::string row = std::string(f.name) + ": hf ";
    for (size_t i = 0; i < f.hf_model_types.size(); ++i) row += (i ? ", " : "") + f.hf_model_types[i];
    if (!f.gguf_architectures.empty()) {
      row += " / gguf ";
      for (size_t i = 0; i < f.gguf_architectures.size(); ++i) row += (i ? ", " : "") + f.gguf_architectures[i];
    }
    out.push_back(row);
  }
  return out;
}

}  // namespace gemmacpp::models
