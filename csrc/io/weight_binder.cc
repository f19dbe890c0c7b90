#include "csrc/io/weight_binder.h"

#include "csrc/core/error.h"
#include "csrc/core/qtype.h"

namespace gemmacpp {
namespace {

// Replaces the first run of digits after a '.' (the layer number) with "{i}"; `layer` gets it.
std::string layer_pattern(const std::string& name, std::string* layer) {
  for (size_t i = 0; i + 1 < name.size(); ++i) {
    if (name[i] != '.' || name[i + 1] < '0' || name[i + 1] > '9') continue;
    size_t e = i + 1;
    while (e < name.size() && name[e] >= '0' && name[e] <= '9') ++e;
    *layer = name.substr(i + 1, e - i - 1);
    return name.substr(0, i + 1) + "{i}" + name.substr(e);
  }
  layer->clear();
  return name;
}

std::string with_layer(const std::string& pattern, const std::string& layer) {
  const size_t at = pattern.find("{i}");
  return at == std::string::npos ? pattern : pattern.substr(0, at) + layer + pattern.substr(at + 3);
}

}  // namespace

NameMap::NameMap(std::string prefix, std::vector<std::pair<std::string, std::string>> patterns)
    : prefix_(std::move(prefix)), patterns_(std::move(patterns)) {}

std::string text_model_prefix(const WeightFile& f, const std::vector<std::string>& prefixes, const std::string& family) {
  for (const std::string& p : prefixes) {
    if (f.find(p + "embed_tokens.weight")) return p;
  }
  throw ValueError(str_cat("'", f.path, "' has no embedding tensor (", prefixes.front(),
                           "embed_tokens.weight): not ", family, " checkpoint?"));
}

std::string NameMap::stored(const std::string& canonical) const {
  std::string layer;
  const std::string pattern = layer_pattern(canonical, &layer);
  if (!layer_sources_.empty() && canonical.rfind("blocks.", 0) == 0) {
    const size_t j = size_t(std::stoll(layer));
    if (j < layer_sources_.size()) layer = std::to_string(layer_sources_[j]);
  }
  for (const auto& [from, to] : patterns_) {
    if (from == pattern) return prefix_ + with_layer(to, layer);
  }
  return prefix_ + canonical;
}

const WeightTensor& WeightBinder::find(const std::string& name, const std::vector<int64_t>& shape) const {
  const std::string stored = names_.stored(name);
  const WeightTensor* t = file_.find(stored);
  GC_CHECK(t, ValueError, "'", file_.path, "' has no tensor '", stored, "'");
  GC_CHECK(t->shape == shape, ValueError, "'", file_.path, "': tensor '", stored, "' has shape ",
           shape_string(t->shape), ", the config needs ", shape_string(shape));
  GC_CHECK(t->supported, NotImplementedError, "'", file_.path, "': tensor '", stored,
           "' is stored as ", t->type_name(), ", which gemmacpp does not read");
  return *t;
}

const WeightTensor& WeightBinder::matrix(const std::string& name, const std::vector<int64_t>& shape) const {
  const WeightTensor& t = find(name, shape);
  if (t.quantized) {
    QType q = QType::kQ8_0;
    GC_CHECK(parse_qtype(t.type_name(), &q), NotImplementedError, "'", file_.path, "': tensor '",
             t.name, "' is stored as ", t.type_name(), ", which gemmacpp cannot use here");
    GC_CHECK(shape.back() % qtype_info(q).block_values == 0, ValueError, "'", file_.path,
             "': tensor '", t.name, "' rows of ", shape.back(), " are not whole ", t.type_name(), " blocks");
    return t;
  }
  GC_CHECK(is_float_activation(t.dtype), TypeError, "'", file_.path, "': tensor '", t.name,
           "' has dtype ", dtype_name(t.dtype), "; expected float32, float16 or bfloat16");
  return t;
}

const WeightTensor& WeightBinder::dense(const std::string& name, const std::vector<int64_t>& shape) const {
  const WeightTensor& t = find(name, shape);
  GC_CHECK(!t.quantized, NotImplementedError, "'", file_.path, "': tensor '", t.name,
           "' is stored as ", t.type_name(), "; it must be float32, float16 or bfloat16");
  GC_CHECK(is_float_activation(t.dtype), TypeError, "'", file_.path, "': tensor '", t.name,
           "' has dtype ", dtype_name(t.dtype), "; expected float32, float16 or bfloat16");
  return t;
}

std::vector<float> WeightBinder::f32(const std::string& name, const std::vector<int64_t>& shape) const {
  return to_f32(dense(name, shape));
}

std::vector<float> to_f32(const WeightTensor& t) {
  std::vector<float> out(size_t(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = load_f32(t.dtype, t.data, int64_t(i));
  return out;
}

}  // namespace gemmacpp
