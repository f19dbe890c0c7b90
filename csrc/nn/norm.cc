#include "csrc/nn/norm.h"

#include <utility>

#include "csrc/core/error.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {

RMSNorm::RMSNorm(const WeightBinder& w, const std::string& name, int64_t d, double eps, bool unit_offset)
    : w_(&w.dense(name, {d})), eps_(float(eps)), unit_offset_(unit_offset) {}

RMSNorm RMSNorm::weightless(int64_t d, double eps) { return with_weight(std::vector<float>(size_t(d), 1.0f), eps); }

RMSNorm RMSNorm::with_weight(std::vector<float> w, double eps) {
  RMSNorm n;
  n.own_ = std::move(w);
  n.eps_ = float(eps);
  n.unit_offset_ = false;
  return n;
}

void RMSNorm::operator()(Device device, const float* in, float* out, int64_t rows) const {
  if (w_ == nullptr) {
    ops::dispatch::rms_norm(device, DType::kF32, in, out, rows, int64_t(own_.size()), DType::kF32, own_.data(),
                            eps_, false);
    return;
  }
  ops::dispatch::rms_norm(device, DType::kF32, in, out, rows, w_->shape[0], w_->dtype, w_->data, eps_,
                          unit_offset_);
}

LayerNorm::LayerNorm(const WeightBinder& w, const std::string& name, int64_t d, double eps)
    : w_(&w.dense(name + ".weight", {d})), b_(&w.dense(name + ".bias", {d})), eps_(float(eps)) {
  GC_CHECK(w_->dtype == b_->dtype, TypeError, "'", w.file().path, "': ", w_->name, " and ", b_->name,
           " have different dtypes");
}

void LayerNorm::operator()(Device device, const float* in, float* out, int64_t rows) const {
  ops::dispatch::layer_norm(device, DType::kF32, in, out, rows, w_->shape[0], w_->dtype, w_->data,
                            b_->data, eps_);
}

}  // namespace gemmacpp::nn
