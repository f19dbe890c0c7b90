// The SigLIP vision tower (SiglipVisionModel, and the tower inside Gemma 3 and PaliGemma): patch
// embedding (a conv with kernel = stride = patch, as image patches times a matrix) plus learned
// position embeddings, pre-LayerNorm ViT layers (bidirectional attention, GELU MLP, biases
// everywhere) run by the shared encoder loop, and a final LayerNorm. Its config reader is
// config.h; the projectors that turn its output into a text model's soft tokens are projector.h.
//
// Hook sites, all [N, P, ...] (N images, P patches): vision.hook_embed; per layer
// vision.blocks.{i}. hook_resid_pre, attn.hook_q/k/v/scores/pattern/z, hook_attn_out,
// hook_resid_mid, mlp.hook_pre, mlp.hook_post, hook_mlp_out, hook_resid_post; vision.hook_out
// (after the final LayerNorm, before any projector).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "csrc/io/json_reader.h"
#include "csrc/io/weight_binder.h"
#include "csrc/io/weights.h"
#include "csrc/nn/config.h"
#include "csrc/nn/hooks.h"

namespace gemmacpp::siglip {

class VisionTower {
 public:
  // Binds the tower's tensors below `prefix` ("" for a SiglipVisionModel file, "vision_tower."
  // inside Gemma 3 / PaliGemma checkpoints); ValueError naming a missing or misshapen one.
  VisionTower(nn::VisionConfig config, std::shared_ptr<const WeightFile> weights, const std::string& prefix);
  ~VisionTower();

  const nn::VisionConfig& config() const { return config_; }
  const WeightFile& weights() const { return *weights_; }
  const nn::HookSites& hook_sites() const { return sites_; }

  // pixels: float32 [N, C, S, S] (S = image_size, values as the processor gives them, [-1, 1]);
  // out: float32 [N, P, d], the last hidden state (after the final LayerNorm), P = (S / patch)^2.
  void encode(const float* pixels, int64_t N, float* out, nn::HookSet* hooks = nullptr) const;

 private:
  struct Parts;
  nn::VisionConfig config_;
  std::shared_ptr<const WeightFile> weights_;
  nn::HookSites sites_;
  std::unique_ptr<Parts> parts_;
};

// A SiglipVisionModel checkpoint (folder with config.json + safetensors, or a .safetensors file
// next to its config.json); `config` is its parsed config.json.
std::shared_ptr<VisionTower> load(const std::string& path, const json::Value& config, const std::string& what);

}  // namespace gemmacpp::siglip
