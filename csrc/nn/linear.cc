#include "csrc/nn/linear.h"

#include "csrc/core/error.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {
namespace {
thread_local Activations construction_activations = Activations::kFloat32;
}  // namespace

LinearActivationsScope::LinearActivationsScope(Activations a) : previous_(construction_activations) {
  construction_activations = a;
}
LinearActivationsScope::~LinearActivationsScope() { construction_activations = previous_; }

Linear::Linear(const WeightBinder& w, const std::string& name, int64_t out, int64_t in,
               const std::string& bias_name)
    : Linear(w.matrix(name, {out, in})) {
  if (!bias_name.empty()) bias_ = w.f32(bias_name, {out});
}

Linear::Linear(const WeightTensor& weight) : w_(&weight), activations_(construction_activations) {
  if (w_->quantized) parse_qtype(w_->type_name(), &qtype_);  // checked when it was bound
}

Linear Linear::prefix(int64_t out, int64_t in) const {
  GC_CHECK(out >= 1 && out <= w_->shape[0] && in >= 1 && in <= w_->shape[1], ValueError, "'", w_->name,
           "' of shape ", shape_string(w_->shape), " has no [", out, ", ", in, "] slice");
  // A quantized row is read by whole blocks: a column slice keeps the stored row stride.
  const int64_t block = w_->quantized ? qtype_info(qtype_).block_values : 1;
  GC_CHECK(in % block == 0, NotImplementedError, "'", w_->name, "' is stored as ", w_->type_name(),
           " (blocks of ", block, " values): a slice of its columns (", in, " of ", w_->shape[1],
           ") must be a multiple of ", block, " values");
  GC_CHECK(bias_.empty() || out == w_->shape[0], NotImplementedError, "'", w_->name, "': slices of biased projections");
  Linear l = *this;
  l.out_ = out;
  l.in_ = in;
  return l;
}

void Linear::operator()(Device device, const float* x, int64_t M, float* out, int64_t ldx,
                        int64_t ldo) const {
  const int64_t N = out_features(), K = in_features(), ldw = w_->shape[1];
  const float* bias = bias_.empty() ? nullptr : bias_.data();
  if (ldx == 0) ldx = K;
  if (ldo == 0) ldo = N;
  if (w_->quantized) {
    const QTypeInfo q = qtype_info(qtype_);
    ops::dispatch::linear_quantized(device, x, ldx, M, K, qtype_, w_->data, N, bias, out, ldo,
                                    ldw / q.block_values * q.block_bytes, activations_);
  } else {
    ops::dispatch::linear(device, x, ldx, M, K, w_->dtype, w_->data, ldw, N, bias, out, ldo);
  }
}

}  // namespace gemmacpp::nn
