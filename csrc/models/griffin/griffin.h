// RecurrentGemma (Griffin) on the CPU: residual blocks whose temporal mixing is either a
// recurrent block (gelu branch times conv1d + RG-LRU branch) or local MQA attention, each followed
// by a GeGLU MLP; weights bound by their HF names from memory-mapped safetensors (read in their
// stored dtype), activations in float32.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "csrc/nn/config.h"
#include "csrc/nn/forward_args.h"
#include "csrc/nn/griffin_cache.h"
#include "csrc/nn/hooks.h"
#include "csrc/io/weights.h"

namespace gemmacpp {

struct GriffinLayerWeights {
  const WeightTensor* temporal_norm = nullptr;  // [d]
  const WeightTensor* channel_norm = nullptr;   // [d]
  // Recurrent block (L = lru_width, H heads of bw = L / H lanes).
  const WeightTensor* linear_x = nullptr;       // [L, d]
  const WeightTensor* linear_y = nullptr;       // [L, d]
  const WeightTensor* linear_out = nullptr;     // [d, L]
  std::vector<float> linear_x_b, linear_y_b, linear_out_b;
  std::vector<float> conv_w;                    // [K, L], transposed from HF's [L, 1, K]
  std::vector<float> conv_b;                    // [L]
  const WeightTensor* a_param = nullptr;        // [L] recurrent_param
  // Gate projections per head, transposed from HF's [H, in, out] to [H, out, in] in the stored
  // dtype, so that each head is one x W^T product.
  DType gate_dtype = DType::kF32;
  std::vector<uint8_t> gate_x_w, gate_a_w;
  std::vector<float> gate_x_b, gate_a_b;        // [L]
  // Attention block.
  const WeightTensor* q = nullptr;              // [H*D, d]
  const WeightTensor* k = nullptr;              // [K*D, d]
  const WeightTensor* v = nullptr;              // [K*D, d]
  const WeightTensor* o = nullptr;              // [d, H*D]
  std::vector<float> q_b, k_b, v_b, o_b;        // q/k/v only with attention_bias
  // MLP.
  const WeightTensor* gate = nullptr;           // [F, d]
  const WeightTensor* up = nullptr;             // [F, d]
  const WeightTensor* down = nullptr;           // [d, F]
  std::vector<float> gate_b, up_b, down_b;
};

class GriffinModel {
 public:
  // Binds every tensor the config needs (ValueError naming a missing or misshapen one).
  GriffinModel(ModelConfig config, std::shared_ptr<const WeightFile> weights);

  const ModelConfig& config() const { return config_; }
  const WeightFile& weights() const { return *weights_; }

  // Runs tokens [B, T] through the model (csrc/nn/forward_args.h); an empty row adds nothing
  // this call. Without a cache every row starts a fresh sequence at position 0; with one, row b
  // continues cached sequence b at position cache->lengths()[b], whose states are updated in
  // place. Logits of padding rows are zero; with last_only each row's last real token's (zeros
  // for an empty row).
  using Args = ForwardArgs<GriffinCache>;
  void forward(const Args& args) const;
  void forward(const int64_t* tokens, int64_t B, int64_t T, float* logits,
               GriffinCache* cache = nullptr, bool last_only = false) const {
    Args a;
    a.tokens = tokens; a.B = B; a.T = T; a.logits = logits; a.cache = cache; a.last_only = last_only;
    forward(a);
  }
  // Every hook point's name, in the order a forward offers them: hook_embed; per block
  // hook_resid_pre, then conv.hook_out and rglru.hook_h (recurrent blocks) or hook_attn_out
  // (attention blocks), hook_resid_mid, mlp.hook_pre, mlp.hook_pre_linear, mlp.hook_post,
  // hook_mlp_out, hook_resid_post; then ln_final.hook_normalized and hook_logits.
  std::vector<std::string> hook_names() const;

 private:
  ModelConfig config_;
  std::shared_ptr<const WeightFile> weights_;
  const WeightTensor* embed_ = nullptr;       // [V, d]
  const WeightTensor* final_norm_ = nullptr;  // [d]
  std::vector<GriffinLayerWeights> layers_;
};

// A HF checkpoint folder (config.json with model_type recurrent_gemma + safetensors), or a
// .safetensors file next to its config.json.
std::shared_ptr<GriffinModel> load_griffin(const std::string& path);

}  // namespace gemmacpp
