#include "csrc/models/embedding_gemma/config.h"

#include <vector>

#include "csrc/core/error.h"
#include "csrc/io/checkpoint.h"
#include "csrc/io/json_reader.h"

namespace gemmacpp::embedding_gemma {
namespace {

using json::Reader;
using json::Value;

std::string join(const std::string& folder, const std::string& path) {
  return path.empty() ? folder : folder + "/" + path;
}

nn::DenseSpec dense(const std::string& folder, const std::string& path) {
  std::string what;
  const std::string dir = join(folder, path);
  const Value cfg = checkpoint::read_json_file(dir + "/config.json", &what);
  GC_CHECK(cfg.kind == Value::Kind::kObject, ValueError, what, ": not a JSON object");
  const Reader r{cfg, what};
  nn::DenseSpec d;
  d.in = r.integer("in_features");
  d.out = r.integer("out_features");
  // sentence-transformers' Dense defaults: a bias and tanh.
  const std::string act = r.string_or("activation_function", "torch.nn.modules.activation.Tanh");
  d.tanh = act == "torch.nn.modules.activation.Tanh";
  GC_CHECK(d.tanh || act == "torch.nn.modules.linear.Identity", NotImplementedError, what,
           ": activation_function '", act, "' is not supported (Identity or Tanh)");
  GC_CHECK(checkpoint::is_regular_file(dir + "/model.safetensors"), NotImplementedError, "'", dir,
           "' has no model.safetensors (a pytorch_model.bin must be converted to safetensors first)");
  d.file = std::make_shared<const WeightFile>(open_weights(dir + "/model.safetensors"));
  d.weight_name = "linear.weight";
  if (r.flag_or("bias", true)) d.bias_name = "linear.bias";
  return d;
}

}  // namespace

nn::SentenceHeadSpec head_from_folder(const std::string& folder) {
  nn::SentenceHeadSpec head;
  for (const checkpoint::SentenceModule& m : checkpoint::sentence_transformers_modules(folder)) {
    if (m.type == "Transformer") continue;
    if (m.type == "Pooling") {
      std::string what;
      const Value cfg = checkpoint::read_json_file(join(folder, m.path) + "/config.json", &what);
      GC_CHECK(cfg.kind == Value::Kind::kObject, ValueError, what, ": not a JSON object");
      const Reader r{cfg, what};
      // sentence-transformers 5+ writes pooling_mode, older versions one flag per mode.
      const bool mean = r.get("pooling_mode") ? r.string_or("pooling_mode", "") == "mean"
                                              : r.flag_or("pooling_mode_mean_tokens", false);
      GC_CHECK(mean, NotImplementedError, what, ": only mean pooling is supported");
      head.pool_includes_prompt = r.flag_or("include_prompt", true);
    } else if (m.type == "Dense") {
      head.dense.push_back(dense(folder, m.path));
    } else if (m.type == "Normalize") {
      head.normalize = true;
    } else {
      throw NotImplementedError(str_cat("'", folder, "/modules.json': module ", m.type, " is not supported ",
                                        "(Transformer, Pooling, Dense, Normalize)"));
    }
  }
  return head;
}

nn::SentenceHeadSpec head_from_gguf(const std::shared_ptr<const WeightFile>& f) {
  nn::SentenceHeadSpec head;
  for (const char* name : {"dense_2", "dense_3"}) {
    const WeightTensor* t = f->find(std::string(name) + ".weight");
    if (!t) continue;
    GC_CHECK(t->shape.size() == 2, ValueError, "'", f->path, "': ", t->name, " is not a matrix");
    nn::DenseSpec d;
    d.file = f;
    d.weight_name = t->name;
    d.out = t->shape[0];
    d.in = t->shape[1];
    if (f->find(std::string(name) + ".bias")) d.bias_name = std::string(name) + ".bias";
    head.dense.push_back(d);
  }
  head.normalize = true;  // llama.cpp's embeddings are unit vectors
  return head;
}

}  // namespace gemmacpp::embedding_gemma
