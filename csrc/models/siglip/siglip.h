// The SigLIP vision tower on the CPU (as in SiglipVisionModel, Gemma 3 and PaliGemma): patch
// embedding (a conv with kernel = stride = patch, done as im2col + a matrix product), learned
// position embeddings, pre-LN encoder layers with bidirectional attention, and a final LayerNorm.
// Also the multimodal projectors that turn its output into the text model's soft tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "csrc/nn/config.h"
#include "csrc/io/weights.h"

namespace gemmacpp {

// Hook points of the vision tower, offered like the text model's (csrc/nn/hooks.h): the tower
// asks wants() once per point and layer and only then calls call(), so an encode with no hooks
// does no extra work. Both are offered as float32 [N, P, d] (N images, P patches, width d).
enum class VisionHookPoint : int {
  kResidPost,  // vision.blocks.{i}.hook_resid_post  the residual stream leaving encoder layer i
  kOut,        // vision.hook_out                   after the post-LayerNorm, before any projector
};

// "vision.blocks.3.hook_resid_post" (layer 3) or "vision.hook_out" (layer ignored).
std::string vision_hook_name(VisionHookPoint p, int64_t layer);
// Every vision hook name of a tower with n_layers encoder layers, in the order encode offers them.
std::vector<std::string> vision_hook_names(int64_t n_layers);
// Parses a name of a tower with n_layers layers; false if it names no vision hook point.
bool parse_vision_hook_name(const std::string& name, int64_t n_layers, VisionHookPoint* point,
                            int64_t* layer);

class VisionHookSet {
 public:
  virtual ~VisionHookSet() = default;
  virtual bool wants(VisionHookPoint point, int64_t layer) const = 0;
  // Offers the contiguous [N, P, d] activation; the hook may change it in place, and the tower
  // continues with what it finds there. Exceptions propagate out of encode.
  virtual void call(VisionHookPoint point, int64_t layer, float* data, const std::vector<int64_t>& shape) = 0;
};

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
  // hooks (nullptr: none) may read and edit the residual stream after each layer and the output.
  void encode(const float* pixels, int64_t N, float* out, VisionHookSet* hooks = nullptr) const;

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
