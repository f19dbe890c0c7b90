#include "csrc/ops/moe.h"

#include <vector>

#include "csrc/core/expert_stack.h"
#include "csrc/ops/common.h"
#include "csrc/ops/dequantize.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::ops {
namespace {

// The product of all dimensions but the last.
int64_t leading_rows(const TensorView& t) {
  int64_t rows = 1;
  for (int i = 0; i + 1 < t.ndim(); ++i) rows *= t.shape[i];
  return rows;
}

// A float vector of any float dtype as float32 (a small copy).
std::vector<float> floats(const TensorView& v) {
  Tensor keep;
  const TensorView& d = dense(v, keep);
  std::vector<float> f(static_cast<size_t>(d.numel()));
  for (int64_t i = 0; i < d.numel(); ++i) f[i] = load_f32(d.dtype, d.data, i);
  return f;
}

// Checks one expert stack against its expected [E, N, K] and makes it an ExpertStack over memory
// that lives as long as `keep`.
ExpertStack expert_stack(const char* name, const ExpertWeights& w, const Device& device,
                         const std::vector<int64_t>& expected, Tensor& keep) {
  GC_CHECK((w.values != nullptr) != (w.blocks != nullptr), ValueError, "moe: ", name,
           " must be either a float array or quantized blocks");
  if (w.values) {
    const TensorView& v = *w.values;
    GC_CHECK(is_float_activation(v.dtype), TypeError, "moe: ", name,
             " must be float32, float16 or bfloat16 (or a QuantizedTensor), got ",
             dtype_name(v.dtype));
    GC_CHECK(v.device == device, ValueError, "moe: ", name, " is on ", v.device.str(),
             " but x is on ", device.str(), "; they must be on the same device");
    check_shape("moe", name, v, expected);
    const TensorView& d = dense(v, keep);  // a strided stack is copied once for this call
    return ExpertStack::dense(d.data, expected[0], expected[1], expected[2], d.dtype);
  }
  GC_CHECK(w.E == expected[0] && w.N == expected[1] && w.K == expected[2], ValueError, "moe: ",
           name, " must have shape [", expected[0], ", ", expected[1], ", ", expected[2],
           "], got [", w.E, ", ", w.N, ", ", w.K, "]");
  const std::string what = std::string("moe: ") + name;
  const TensorView* data = nullptr;
  // E matrices of [N, K] back to back are E * N rows of K values.
  const QType t = check_quantized(what.c_str(), *w.blocks, w.qtype,
                                 checked_mul(w.E, w.N, what.c_str()), w.K, &data, keep);
  return ExpertStack::blocks(data->data, w.E, w.N, w.K, t);
}

}  // namespace

std::pair<Tensor, Tensor> moe_route(const TensorView& logits_in, int64_t k,
                                    const TensorView* per_expert_scale) {
  GC_CHECK(logits_in.dtype == DType::kF32, TypeError, "moe_route: logits must be float32, got ",
           dtype_name(logits_in.dtype));
  GC_CHECK(logits_in.ndim() >= 1, ValueError,
           "moe_route: logits must have at least 1 dimension [..., E], got a scalar");
  const int64_t E = logits_in.shape.back(), M = leading_rows(logits_in);
  GC_CHECK(E >= 1, ValueError, "moe_route: logits must have at least one expert (E = ",
           logits_in.shape_str(), "[-1] is 0)");
  GC_CHECK(k >= 1 && k <= E, ValueError, "moe_route: k must be in [1, E] = [1, ", E, "], got ",
           k);
  std::vector<float> scale;
  if (per_expert_scale) {
    check_float("moe_route", "per_expert_scale", *per_expert_scale);
    check_same_device("moe_route", "per_expert_scale", *per_expert_scale, "logits", logits_in);
    check_shape("moe_route", "per_expert_scale", *per_expert_scale, {E});
  }
  GC_CHECK(logits_in.device.is_cpu(), NotImplementedError, "moe_route: logits are on ",
           logits_in.device.str(), "; moe_route has no CUDA kernel yet");
  if (per_expert_scale) scale = floats(*per_expert_scale);
  Tensor keep;
  const TensorView& logits = dense(logits_in, keep);
  std::vector<int64_t> shape(logits.shape.begin(), logits.shape.end() - 1);
  shape.push_back(k);
  Tensor ids = Tensor::empty(DType::kI32, shape, logits.device);
  Tensor weights = Tensor::empty(DType::kF32, shape, logits.device);
  dispatch::moe_route(logits.device, logits.ptr<const float>(), M, E, k,
                      per_expert_scale ? scale.data() : nullptr, ids.view().ptr<int32_t>(),
                      weights.view().ptr<float>());
  return {std::move(ids), std::move(weights)};
}

Tensor moe(const TensorView& x_in, const TensorView& ids_in, const TensorView& weights_in,
           const ExpertWeights& gate_up_in, const ExpertWeights& down_in, const TensorView* out) {
  GC_CHECK(x_in.dtype == DType::kF32, TypeError, "moe: x must be float32 (activations), got ",
           dtype_name(x_in.dtype));
  GC_CHECK(x_in.ndim() >= 1, ValueError, "moe: x must have at least 1 dimension [..., D], got ",
           "a scalar");
  const int64_t D = x_in.shape.back(), M = leading_rows(x_in);
  GC_CHECK(ids_in.dtype == DType::kI32 || ids_in.dtype == DType::kI64, TypeError,
           "moe: ids must be int32 or int64, got ", dtype_name(ids_in.dtype));
  GC_CHECK(ids_in.ndim() == x_in.ndim() &&
               std::equal(x_in.shape.begin(), x_in.shape.end() - 1, ids_in.shape.begin()),
           ValueError, "moe: ids must have shape [..., k] with x's leading dimensions (x is ",
           x_in.shape_str(), "), got ", ids_in.shape_str());
  const int64_t k = ids_in.shape.back();
  GC_CHECK(k >= 1, ValueError, "moe: ids must name at least one expert per token (k = 0)");
  GC_CHECK(weights_in.dtype == DType::kF32, TypeError, "moe: weights must be float32, got ",
           dtype_name(weights_in.dtype));
  check_shape("moe", "weights", weights_in, ids_in.shape);
  check_same_device("moe", "ids", ids_in, "x", x_in);
  check_same_device("moe", "weights", weights_in, "x", x_in);
  GC_CHECK(x_in.device.is_cpu(), NotImplementedError, "moe: x is on ", x_in.device.str(),
           "; moe has no CUDA kernel yet");

  // gate_up fixes E and F: [E, 2F, D]; down must be [E, D, F].
  if (gate_up_in.values) check_rank("moe", "gate_up", *gate_up_in.values, 3, "[E, 2F, D]");
  if (down_in.values) check_rank("moe", "down", *down_in.values, 3, "[E, D, F]");
  const int64_t E = gate_up_in.values ? gate_up_in.values->size(0) : gate_up_in.E;
  const int64_t N2 = gate_up_in.values ? gate_up_in.values->size(1) : gate_up_in.N;
  GC_CHECK(E >= 1, ValueError, "moe: gate_up must hold at least one expert, got E = ", E);
  GC_CHECK(N2 % 2 == 0, ValueError, "moe: gate_up must be [E, 2F, D] (gate rows then up rows), ",
           "but its second dimension ", N2, " is odd");
  const int64_t F = N2 / 2;
  Tensor keep_gu, keep_dn;
  const ExpertStack gate_up = expert_stack("gate_up", gate_up_in, x_in.device, {E, 2 * F, D}, keep_gu);
  const ExpertStack down = expert_stack("down", down_in, x_in.device, {E, D, F}, keep_dn);

  // ids as int32 in [0, E).
  Tensor keep_ids, keep_w;
  const TensorView& ids_d = dense(ids_in, keep_ids);
  std::vector<int32_t> ids32;
  const int32_t* ids = nullptr;
  const int64_t P = M * k;
  for (int64_t p = 0; p < P; ++p) {
    const int64_t id = ids_d.dtype == DType::kI32 ? ids_d.ptr<const int32_t>()[p]
                                                  : ids_d.ptr<const int64_t>()[p];
    GC_CHECK(id >= 0 && id < E, ValueError, "moe: ids must be in [0, E) = [0, ", E,
             "), got ", id, " at flat index ", p);
  }
  if (ids_d.dtype == DType::kI32) {
    ids = ids_d.ptr<const int32_t>();
  } else {
    ids32.resize(size_t(P));
    for (int64_t p = 0; p < P; ++p) ids32[p] = int32_t(ids_d.ptr<const int64_t>()[p]);
    ids = ids32.data();
  }
  const TensorView& w = dense(weights_in, keep_w);

  Tensor keep_x;
  const TensorView* x = &x_in;
  int64_t ldx = D;
  if (x_in.ndim() == 2 && x_in.rows_contiguous() && M > 1) {
    ldx = x_in.stride(0);
  } else if (!x_in.is_contiguous()) {
    x = &dense(x_in, keep_x);
  }
  Output y("moe", out, DType::kF32, x_in.shape, x_in.device, /*need_contiguous=*/x_in.ndim() > 2);
  const TensorView& yv = y.view();
  const int64_t ldo = M > 1 && yv.ndim() == 2 ? yv.stride(0) : D;
  dispatch::moe_experts(x_in.device, x->ptr<const float>(), ldx, M, ids, w.ptr<const float>(), k,
                        gate_up, down, yv.ptr<float>(), ldo, nullptr);
  return y.finish();
}

}  // namespace gemmacpp::ops
