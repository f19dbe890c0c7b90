#include "csrc/models/siglip/projector.h"

#include <cmath>
#include <utility>

#include "csrc/core/error.h"
#include "csrc/io/weight_binder.h"
#include "csrc/nn/forward.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::siglip {

Projector::Projector(std::string kind, const nn::VisionConfig& vision, int64_t text_d, int64_t tokens,
                     std::shared_ptr<const WeightFile> weights, const std::string& prefix)
    : kind_(std::move(kind)), vision_(vision), d_(text_d), tokens_(tokens), weights_(std::move(weights)) {
  const WeightBinder w(*weights_, NameMap(prefix));
  const int64_t dv = vision_.d;
  if (kind_ == "gemma3") {
    const int64_t G = vision_.patches_per_side(), T = int64_t(std::lround(std::sqrt(double(tokens))));
    GC_CHECK(T * T == tokens && T >= 1 && G % T == 0, ValueError, "gemma3 projector: ", tokens,
             " tokens per image are not a square grid that divides the ", G, " x ", G, " patches");
    norm_w_ = &w.dense("mm_soft_emb_norm.weight", {dv});
    const std::vector<float> wf = w.f32("mm_input_projection_weight", {dv, d_});  // x W: our GEMM's W^T
    proj_t_.resize(size_t(d_ * dv));
    for (int64_t i = 0; i < dv; ++i)
      for (int64_t j = 0; j < d_; ++j) proj_t_[size_t(j * dv + i)] = wf[size_t(i * d_ + j)];
  } else {
    GC_CHECK(kind_ == "paligemma", ValueError, "unknown vision projector '", kind_, "'");
    tokens_ = vision_.n_patches();
    linear_w_ = &w.dense("linear.weight", {d_, dv});
    linear_b_ = w.f32("linear.bias", {d_});
  }
}

void Projector::project(const float* features, int64_t N, float* out) const {
  const Device device;
  const int64_t dv = vision_.d, P = vision_.n_patches();
  if (kind_ == "paligemma") {
    ops::dispatch::linear(device, features, dv, N * P, dv, linear_w_->dtype, linear_w_->data, dv, d_,
                          linear_b_.data(), out, d_);
    return;
  }
  const int64_t G = vision_.patches_per_side(), T = int64_t(std::lround(std::sqrt(double(tokens_))));
  const nn::Buffer pooled(N * tokens_ * dv, device);
  ops::dispatch::pool_patch_grid(device, features, N, G, dv, T, pooled);
  ops::dispatch::rms_norm(device, DType::kF32, pooled, pooled, N * tokens_, dv, norm_w_->dtype, norm_w_->data,
                          float(vision_.norm_eps), /*unit_offset=*/true);
  ops::dispatch::linear(device, pooled, dv, N * tokens_, dv, DType::kF32, proj_t_.data(), dv, d_, nullptr,
                        out, d_);
}

}  // namespace gemmacpp::siglip
