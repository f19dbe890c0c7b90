// Gemma 1/2/3 text model on the CPU: weights bound by name (HF or GGUF) from a memory-mapped file (read
// in their stored dtype or GGML blocks, never copied), and the full-sequence forward pass in float32.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "csrc/nn/config.h"
#include "csrc/nn/forward_args.h"
#include "csrc/nn/hooks.h"
#include "csrc/nn/kv_cache.h"
#include "csrc/io/weights.h"

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

  // Runs tokens [B, T] through the model (csrc/nn/forward_args.h). Without a cache every row
  // starts at position 0; with one, row b continues its cached sequence at position
  // cache->lengths()[b] and its keys/values are appended. Logits of padding rows are zero; with
  // last_only each row's last real token's (zeros for an empty row).
  struct Args : ForwardArgs<KVCache> {
    // Vision-language inputs (all optional; see python/gemmacpp/model.py for the layouts).
    // embeds [B, T, d] float32: row (b, t) is used instead of token (b, t)'s (scaled) embedding
    // where embed_mask[b * T + t] != 0 (image soft tokens; their ids are not looked up).
    const float* embeds = nullptr;
    const uint8_t* embed_mask = nullptr;
    // Bidirectional spans, n_spans rows of (b, start, end): tokens [start, end) of row b (indices
    // into this call's tokens) also see the span's later tokens. Per row sorted and disjoint.
    // On sliding-window layers a span stays inside the window when span_in_window (Gemma 3's
    // image blocks), else its tokens see all of it (PaliGemma 2's prefix).
    const int64_t* spans = nullptr;
    int64_t n_spans = 0;
    bool span_in_window = true;
    int64_t position_offset = 0;  // added to RoPE positions (PaliGemma counts from 1)
  };
  void forward(const Args& args) const;
  void forward(const int64_t* tokens, int64_t B, int64_t T, float* logits, KVCache* cache = nullptr) const {
    Args a;
    a.tokens = tokens; a.B = B; a.T = T; a.logits = logits; a.cache = cache;
    forward(a);
  }

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
