#include "csrc/nn/linear.h"

#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {

Linear::Linear(const WeightBinder& w, const std::string& name, int64_t out, int64_t in,
               const std::string& bias_name)
    : Linear(w.matrix(name, {out, in})) {
  if (!bias_name.empty()) bias_ = w.f32(bias_name, {out});
}

Linear::Linear(const WeightTensor& weight) : w_(&weight) {
  if (w_->quantized) parse_qtype(w_->type_name(), &qtype_);  // checked when it was bound
}

void Linear::operator()(Device device, const float* x, int64_t M, float* out, int64_t ldx,
                        int64_t ldo) const {
  const int64_t N = w_->shape[0], K = w_->shape[1];
  const float* bias = bias_.empty() ? nullptr : bias_.data();
  if (ldx == 0) ldx = K;
  if (ldo == 0) ldo = N;
  if (w_->quantized) {
    ops::dispatch::linear_quantized(device, x, ldx, M, K, qtype_, w_->data, N, bias, out, ldo);
  } else {
    ops::dispatch::linear(device, x, ldx, M, K, w_->dtype, w_->data, K, N, bias, out, ldo);
  }
}

}  // namespace gemmacpp::nn
