#include "csrc/ops/token_logprobs.h"

#include <algorithm>
#include <vector>

#include "csrc/ops/common.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::ops {

std::pair<Tensor, Tensor> token_logprobs(const TensorView& logits_in, const TensorView& targets_in) {
  GC_CHECK(logits_in.dtype == DType::kF32, TypeError,
           "token_logprobs: logits must be float32, got ", dtype_name(logits_in.dtype));
  GC_CHECK(logits_in.ndim() >= 1, ValueError,
           "token_logprobs: logits must have at least 1 dimension [..., V], got a scalar");
  const int64_t V = logits_in.shape.back();
  GC_CHECK(V >= 1, ValueError, "token_logprobs: logits ", logits_in.shape_str(),
           " have an empty vocabulary (last dimension 0)");
  GC_CHECK(targets_in.dtype == DType::kI32 || targets_in.dtype == DType::kI64, TypeError,
           "token_logprobs: targets must be int32 or int64, got ", dtype_name(targets_in.dtype));
  const std::vector<int64_t> lead(logits_in.shape.begin(), logits_in.shape.end() - 1);
  check_shape("token_logprobs", "targets", targets_in, lead);
  check_same_device("token_logprobs", "targets", targets_in, "logits", logits_in);
  GC_CHECK(logits_in.device.is_cpu(), NotImplementedError, "token_logprobs: logits are on ",
           logits_in.device.str(), "; token_logprobs has no CUDA kernel yet");

  Tensor keep_logits, keep_targets;
  // A 1-D or 2-D logits keeps its row stride; more leading dimensions are made dense so that one
  // stride steps through all rows.
  const TensorView& logits = logits_in.ndim() <= 2 ? dense_rows(logits_in, keep_logits)
                                                   : dense(logits_in, keep_logits);
  const TensorView& targets = dense(targets_in, keep_targets);
  const int64_t M = targets.numel();
  std::vector<int64_t> ids(M);
  for (int64_t m = 0; m < M; ++m) {
    ids[m] = targets.dtype == DType::kI64 ? targets.ptr<const int64_t>()[m]
                                          : targets.ptr<const int32_t>()[m];
    GC_CHECK(ids[m] >= 0 && ids[m] < V, ValueError, "token_logprobs: targets[", m, "] = ", ids[m],
             " is not a token of the vocabulary [0, ", V, ")");
  }
  Tensor logp = Tensor::empty(DType::kF64, lead, logits.device);
  Tensor argmax = Tensor::empty(DType::kI64, lead, logits.device);
  if (M == 0) return {std::move(logp), std::move(argmax)};
  const int64_t ld = logits.ndim() >= 2 ? logits.strides[logits.ndim() - 2] : V;
  dispatch::token_logprobs(logits.device, logits.ptr<const float>(), ld, M, V, ids.data(),
                           logp.view().ptr<double>(), argmax.view().ptr<int64_t>());
  return {std::move(logp), std::move(argmax)};
}

}  // namespace gemmacpp::ops
