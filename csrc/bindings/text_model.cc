#include "csrc/bindings/text_model.h"

namespace gemmacpp::bindings {

pybind11::dict common_config_to_py(const ModelConfig& c) {
  pybind11::dict out;
  out["family"] = c.family;
  out["vocab_size"] = c.vocab;
  out["hidden_size"] = c.d;
  out["num_layers"] = c.n_layers;
  out["num_heads"] = c.n_heads;
  out["num_kv_heads"] = c.n_kv_heads;
  out["head_dim"] = c.head_dim;
  out["intermediate_size"] = c.ffn;  // the MLP's real hidden size
  out["norm_eps"] = c.norm_eps;
  return out;
}

}  // namespace gemmacpp::bindings
