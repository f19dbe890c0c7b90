// Gemma 1/2/3 text model on the CPU: weights bound by name (HF or GGUF) from a memory-mapped file (read
// in their stored dtype or GGML blocks, never copied), and the full-sequence forward pass in float32.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "csrc/models/config.h"
#include "csrc/models/kv_cache.h"
#include "csrc/models/weights.h"

namespace gemmacpp {

struct GemmaLayerWeights {
  const WeightTensor* attn_norm = nullptr;       // input_layernorm
  const WeightTensor* q = nullptr;               // [H*D, d]
  const WeightTensor* k = nullptr;               // [K*D, d]
  const WeightTensor* v = nullptr;               // [K*D, d]
  const WeightTensor* o = nullptr;               // [d, H*D]
  const WeightTensor* q_norm = nullptr;          // [D], Gemma 3
  const WeightTensor* k_norm = nullptr;          // [D], Gemma 3
  const WeightTensor* post_attn_norm = nullptr;  // Gemma 2/3
  const WeightTensor* ffw_norm = nullptr;        // before the MLP
  const WeightTensor* post_ffw_norm = nullptr;   // Gemma 2/3
  const WeightTensor* gate = nullptr;            // [F, d]
  const WeightTensor* up = nullptr;              // [F, d]
  const WeightTensor* down = nullptr;            // [d, F]
};

class GemmaModel {
 public:
  // Binds every tensor the config needs (ValueError naming a missing or misshapen one).
  GemmaModel(ModelConfig config, std::shared_ptr<const WeightFile> weights);

  const ModelConfig& config() const { return config_; }
  const WeightFile& weights() const { return *weights_; }

  // tokens: [B, T] ids in [0, vocab); logits: [B, T, vocab] float32, written in full.
  // Without a cache the tokens are positions 0..T-1 of fresh sequences; with one they continue
  // the cached sequences (positions length..length+T-1), and their keys/values are appended.
  // last_only: logits [B, 1, vocab] of each sequence's last position only.
  void forward(const int64_t* tokens, int64_t B, int64_t T, float* logits, KVCache* cache = nullptr,
               bool last_only = false) const;

 private:
  ModelConfig config_;
  std::shared_ptr<const WeightFile> weights_;
  // Norm weights are stored as w in HF files (applied as 1 + w); GGUF stores 1 + w.
  bool norm_unit_offset_ = true;
  const WeightTensor* embed_ = nullptr;       // [V, d]
  const WeightTensor* final_norm_ = nullptr;  // [d]
  std::vector<GemmaLayerWeights> layers_;
};

// A HF checkpoint folder (config.json + safetensors), a .safetensors file next to its
// config.json, or a .gguf file (config from its metadata).
std::shared_ptr<GemmaModel> load_gemma(const std::string& path);

}  // namespace gemmacpp
