// The SigLIP vision tower on the CPU (as in SiglipVisionModel, Gemma 3 and PaliGemma): patch
// embedding (a conv with kernel = stride = patch, done as im2col + a matrix product), learned
// position embeddings, pre-LN encoder layers with bidirectional attention, and a final LayerNorm.
// Also the multimodal projectors that turn its output into the text model's soft tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "csrc/models/config.h"
#include "csrc/models/weights.h"

namespace gemmacpp {

struct SiglipLayerWeights {
  const WeightTensor *ln1_w = nullptr, *ln1_b = nullptr, *ln2_w = nullptr, *ln2_b = nullptr;
  const WeightTensor *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;  // [d, d]
  const WeightTensor *fc1 = nullptr, *fc2 = nullptr;  // [F, d], [d, F]
  std::vector<float> q_b, k_b, v_b, o_b, fc1_b, fc2_b;  // biases in float32 (the GEMM's epilogue)
};

class SiglipModel {
 public:
  // Binds the tower's tensors below `prefix` ("" for a SiglipVisionModel file, "vision_tower."
  // inside Gemma 3 / PaliGemma checkpoints); ValueError naming a missing or misshapen one.
  SiglipModel(VisionConfig config, std::shared_ptr<const WeightFile> weights, const std::string& prefix);

  const VisionConfig& config() const { return config_; }
  const WeightFile& weights() const { return *weights_; }

  // pixels: float32 [N, C, S, S] (S = image_size, values as the processor gives them, [-1, 1]);
  // out: float32 [N, P, d], the last hidden state (after the final LayerNorm), P = (S / patch)^2.
  void encode(const float* pixels, int64_t N, float* out) const;

 private:
  VisionConfig config_;
  std::shared_ptr<const WeightFile> weights_;
  const WeightTensor* patch_w_ = nullptr;  // [d, C, patch, patch], read as [d, C * patch^2]
  std::vector<float> patch_b_, pos_;       // [d], [P, d]
  const WeightTensor *post_w_ = nullptr, *post_b_ = nullptr;
  std::vector<SiglipLayerWeights> layers_;
};

// Vision features [N, P, dv] -> soft tokens [N, tokens, d] for the text model.
//  gemma3:    P patches as a square grid, average-pooled to tokens (a square) -> RMSNorm (1 + w)
//             -> x W with W [dv, d] (mm_input_projection_weight).
//  paligemma: a linear layer with bias, [d, dv]; tokens = P.
class VisionProjector {
 public:
  // Tensors below `prefix` (e.g. "multi_modal_projector.").
  VisionProjector(std::string kind, const VisionConfig& vision, int64_t text_d, int64_t tokens,
                  std::shared_ptr<const WeightFile> weights, const std::string& prefix);
  int64_t tokens() const { return tokens_; }
  int64_t out_dim() const { return d_; }
  void project(const float* features, int64_t N, float* out) const;

 private:
  std::string kind_;
  VisionConfig vision_;
  int64_t d_ = 0, tokens_ = 0;
  std::shared_ptr<const WeightFile> weights_;
  const WeightTensor* norm_w_ = nullptr;  // gemma3
  std::vector<float> proj_t_;             // gemma3: W transposed to [d, dv], float32
  const WeightTensor* linear_w_ = nullptr;  // paligemma [d, dv]
  std::vector<float> linear_b_;
};

// A SiglipVisionModel checkpoint (folder with config.json + safetensors, or a .safetensors file
// next to its config.json).
std::shared_ptr<SiglipModel> load_siglip(const std::string& path);

}  // namespace gemmacpp
