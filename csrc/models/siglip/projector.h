// The multimodal projectors that turn SigLIP features [N, P, dv] into a text model's soft tokens
// [N, tokens, d]:
//  gemma3:    the P patches as a square grid, average-pooled to `tokens` (a square) -> RMSNorm
//             (1 + w) -> x W with W [dv, d] (mm_input_projection_weight).
//  paligemma: a linear layer with bias, [d, dv]; tokens = P.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "csrc/io/weights.h"
#include "csrc/nn/config.h"

namespace gemmacpp::siglip {

class Projector {
 public:
  // kind "gemma3" or "paligemma"; tensors below `prefix` (e.g. "multi_modal_projector.").
  Projector(std::string kind, const nn::VisionConfig& vision, int64_t text_d, int64_t tokens,
            std::shared_ptr<const WeightFile> weights, const std::string& prefix);
  int64_t tokens() const { return tokens_; }
  int64_t out_dim() const { return d_; }
  void project(const float* features, int64_t N, float* out) const;

 private:
  std::string kind_;
  nn::VisionConfig vision_;
  int64_t d_ = 0, tokens_ = 0;
  std::shared_ptr<const WeightFile> weights_;
  const WeightTensor* norm_w_ = nullptr;  // gemma3
  std::vector<float> proj_t_;             // gemma3: W transposed to [d, dv], float32
  const WeightTensor* linear_w_ = nullptr;  // paligemma [d, dv]
  std::vector<float> linear_b_;
};

}  // namespace gemmacpp::siglip
