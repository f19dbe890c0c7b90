#include "csrc/models/siglip/config.h"

#include "csrc/core/error.h"

namespace gemmacpp::siglip {

using json::Reader;
using json::Value;
using nn::VisionConfig;

VisionConfig config_from_hf(const Value& root, const std::string& what) {
  GC_CHECK(root.kind == Value::Kind::kObject, ValueError, what, ": not a JSON object");
  const std::string type = Reader{root, what}.string_or("model_type", "");
  const Value* obj = &root;
  if (type != "siglip_vision_model") {
    obj = root.get("vision_config");
    GC_CHECK(obj && obj->kind == Value::Kind::kObject, ValueError, what, ": model_type '", type,
             "' has no vision_config object");
  }
  Reader r{*obj, what};
  const std::string act = r.string_or("hidden_act", "gelu_pytorch_tanh");
  GC_CHECK(act == "gelu_pytorch_tanh" || act == "gelu_tanh", NotImplementedError, what,
           ": vision hidden_act '", act, "' is not supported (only gelu_pytorch_tanh)");
  VisionConfig c;  // defaults: HF's SiglipVisionConfig
  c.d = r.integer_or("hidden_size", 768);
  c.n_layers = r.integer_or("num_hidden_layers", 12);
  c.n_heads = r.integer_or("num_attention_heads", 12);
  c.head_dim = c.n_heads ? c.d / c.n_heads : 0;
  c.ffn = r.integer_or("intermediate_size", 3072);
  c.image_size = r.integer_or("image_size", 224);
  c.patch = r.integer_or("patch_size", 16);
  c.channels = r.integer_or("num_channels", 3);
  c.norm_eps = r.number_or("layer_norm_eps", 1e-6);
  c.validate();
  return c;
}

}  // namespace gemmacpp::siglip
