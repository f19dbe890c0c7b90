// One description of a Gemma 1/2/3 text model: sizes, and every choice that varies per layer
// (local or global attention, window, RoPE base and scale), spelled out so that the forward pass
// never re-derives them from a family name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gemmacpp {

struct LayerConfig {
  bool recurrent = false;    // Griffin recurrent block (conv + RG-LRU) instead of attention
  bool local = false;        // sliding-window attention
  int64_t window = 0;        // keys with q - k < window; 0 on global layers
  double rope_base = 10000;  // theta
  double rope_scale = 1;     // linear scaling: positions are divided by it
};

struct ModelConfig {
  std::string family;  // "gemma", "gemma2", "gemma3", "recurrent_gemma"
  int64_t vocab = 0, d = 0, n_layers = 0;
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0, ffn = 0;
  double norm_eps = 1e-6;
  float attn_softcap = 0;   // 0: none
  float final_softcap = 0;  // 0: none
  double query_pre_attn_scalar = 0;  // attention scale is its -1/2 power
  bool qk_norm = false;     // RMSNorm of q and k per head (Gemma 3)
  bool sandwich_norms = false;  // post-attention and post-ffw norms (Gemma 2, 3)
  float embed_scale = 1;    // sqrt(d), applied to the embedding rows
  bool tied_head = true;    // logits = h E^T
  std::vector<LayerConfig> layers;
  // RecurrentGemma (Griffin) only; ffn above is the MLP's real hidden size there (half of HF's
  // intermediate_size), and every projection has a bias except q, k, v without attention_bias.
  int64_t lru_width = 0;      // width of the recurrent branch
  int64_t conv1d_width = 0;   // taps of the temporal conv
  int64_t rotary_dim = 0;     // RoPE turns the first rotary_dim dims of each head; 0: head_dim
  bool attn_bias = false;     // q, k, v projections have biases

  float attn_scale() const;
  // ValueError naming the first inconsistent field.
  void validate() const;
};

// From a Hugging Face config.json (model_type gemma, gemma2, gemma3_text, gemma3 whose
// text_config is used, or recurrent_gemma); `what` names the source in errors.
ModelConfig config_from_hf_json(const std::string& text, const std::string& what);
ModelConfig config_from_hf_file(const std::string& path);

// A SigLIP vision tower (HF SiglipVisionConfig): a ViT with patch size `patch` on square images of
// image_size pixels, pre-LN layers with biases, MLP with gelu_tanh, and a final LayerNorm.
struct VisionConfig {
  int64_t d = 0, n_layers = 0, n_heads = 0, head_dim = 0, ffn = 0;
  int64_t image_size = 0, patch = 0, channels = 3;
  double norm_eps = 1e-6;
  int64_t patches_per_side() const { return patch > 0 ? image_size / patch : 0; }
  int64_t n_patches() const { return patches_per_side() * patches_per_side(); }
  void validate() const;
};

// From a config.json: model_type siglip_vision_model itself, or the vision_config of a gemma3 or
// paligemma config (with HF's SiglipVisionConfig defaults for fields left out).
VisionConfig vision_config_from_hf_json(const std::string& text, const std::string& what);
VisionConfig vision_config_from_hf_file(const std::string& path);

class WeightFile;
// From GGUF metadata (general.architecture gemma, gemma2, gemma3), as llama.cpp writes it.
ModelConfig config_from_gguf(const WeightFile& f);

}  // namespace gemmacpp
