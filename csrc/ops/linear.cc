#include "csrc/ops/linear.h"

#include <vector>

#include "csrc/cpu/linear.h"
#include "csrc/cpu/quant.h"
#include "csrc/cpu/quant_int8.h"
#include "csrc/ops/common.h"
#include "csrc/ops/dequantize.h"
#ifdef GEMMACPP_WITH_CUDA
#include "csrc/cuda/linear.h"
#endif

namespace gemmacpp::ops {
namespace {

// The distance in elements between consecutive rows when all dimensions but the last of t
// (rows contiguous) collapse into one row index, else -1. `rows` is their product.
int64_t uniform_row_stride(const TensorView& t, int64_t rows) {
  const int64_t row_len = t.ndim() ? t.shape.back() : 1;
  if (rows <= 1) return row_len;  // a single row: the stride is never used
  int64_t stride = -1, span = 0;  // stride of the innermost leading dim of size > 1, its reach
  for (int i = t.ndim() - 2; i >= 0; --i) {
    if (t.shape[i] == 1) continue;
    if (stride < 0) {
      stride = t.strides[i];
    } else if (t.strides[i] != span) {
      return -1;
    }
    span = t.strides[i] * t.shape[i];
  }
  return stride >= 0 ? stride : -1;
}

// x as M rows ldx apart (a copy in keep only when its leading dimensions cannot be walked so).
const TensorView& x_as_rows(const TensorView& x_in, Tensor& keep, int64_t* rows, int64_t* ldx) {
  const TensorView* x = &dense_rows(x_in, keep);
  *rows = 1;
  for (int i = 0; i + 1 < x->ndim(); ++i) *rows *= x->shape[i];
  *ldx = uniform_row_stride(*x, *rows);
  if (*ldx < 0) {
    keep = contiguous_copy(*x);
    x = &keep.view();
    *ldx = x->shape.back();
  }
  return *x;
}

void check_x(const TensorView& x) {
  GC_CHECK(x.dtype == DType::kF32, TypeError,
           "linear: x must be float32 (activations), got ", dtype_name(x.dtype));
  GC_CHECK(x.ndim() >= 1, ValueError, "linear: x must have at least 1 dimension [..., K], got ",
           "a scalar");
}

void check_bias(const TensorView& x, const TensorView* bias, int64_t N) {
  if (bias) {
    check_float("linear", "bias", *bias);
    check_same_device("linear", "bias", *bias, "x", x);
    check_shape("linear", "bias", *bias, {N});
  }
}

void check_bias_and_device(const TensorView& x, const TensorView* bias, int64_t N,
                           const char* what) {
  check_bias(x, bias, N);
  GC_CHECK(x.device.is_cpu(), NotImplementedError, "linear: x is on ", x.device.str(), "; ", what,
           " has no CUDA kernel yet");
}

// What both entry points share once the weight is checked: x as rows, the bias in float32, the
// output ([..., N] float32, or out=) and the empty-K case; `kernel` computes the rest.
template <class Kernel>
Tensor run_linear(const TensorView& x_in, int64_t N, const TensorView* bias, const TensorView* out,
                  const Kernel& kernel) {
  const int64_t K = x_in.shape.back();
  Tensor x_keep;
  int64_t rows = 1, ldx = K;
  const TensorView& x = x_as_rows(x_in, x_keep, &rows, &ldx);
  std::vector<float> b;
  if (bias) b = float_vector(*bias);
  std::vector<int64_t> shape(x_in.shape.begin(), x_in.shape.end() - 1);
  shape.push_back(N);
  Output y("linear", out, DType::kF32, shape, x_in.device, /*need_contiguous=*/shape.size() > 2);
  const TensorView& yv = y.view();
  const int64_t ldo = rows > 1 && yv.ndim() == 2 ? yv.stride(0) : N;
  if (K == 0) {  // an empty sum: the bias alone
    for (int64_t m = 0; m < rows; ++m)
      for (int64_t n = 0; n < N; ++n) yv.ptr<float>()[m * ldo + n] = bias ? b[n] : 0.0f;
  } else {
    kernel(x.ptr<const float>(), ldx, rows, K, bias ? b.data() : nullptr, yv.ptr<float>(), ldo);
  }
  return y.finish();
}

// The CUDA path: no device-side copies of strided views yet, so x must be walkable as rows and
// the weight's rows must be contiguous.
Tensor linear_cuda(const TensorView& x, const TensorView& w, const TensorView* bias,
                   const TensorView* out) {
#ifdef GEMMACPP_WITH_CUDA
  const int64_t K = x.shape.back(), N = w.size(0);
  int64_t rows = 1;
  for (int i = 0; i + 1 < x.ndim(); ++i) rows *= x.shape[i];
  const int64_t ldx = x.rows_contiguous() ? uniform_row_stride(x, rows) : -1;
  GC_CHECK(ldx >= 0, ValueError, "linear: x on ", x.device.str(),
           " must be rows with a contiguous last dimension and one row stride");
  GC_CHECK(w.rows_contiguous(), ValueError, "linear: weight on ", w.device.str(),
           " must have a contiguous last dimension");
  std::vector<int64_t> shape(x.shape.begin(), x.shape.end() - 1);
  shape.push_back(N);
  GC_CHECK(out == nullptr || out->is_contiguous() || (shape.size() <= 2 && out->rows_contiguous()),
           ValueError, "linear: out on ", x.device.str(), " must be contiguous");
  Output y("linear", out, DType::kF32, shape, x.device, /*need_contiguous=*/shape.size() > 2);
  const TensorView& yv = y.view();
  const int64_t ldo = rows > 1 && yv.ndim() == 2 ? yv.stride(0) : N;
  const int64_t ldw = N > 1 ? w.stride(0) : K;
  cuda::linear(x.ptr<const float>(), ldx, rows, K, w.dtype, w.data, ldw, N,
               bias ? bias->dtype : DType::kF32, bias ? bias->data : nullptr,
               bias ? bias->stride(0) : 0, yv.ptr<float>(), ldo, x.device.index);
  return y.finish();
#else
  throw ValueError("linear: x is on " + x.device.str() + " but this build has no CUDA support");
#endif
}

}  // namespace

Tensor linear(const TensorView& x_in, const TensorView& w_in, const TensorView* bias,
              const TensorView* out) {
  check_x(x_in);
  GC_CHECK(is_float_activation(w_in.dtype), TypeError,
           "linear: weight must be float32, bfloat16 or float16, got ", dtype_name(w_in.dtype));
  check_rank("linear", "weight", w_in, 2, "[N, K]");
  check_same_device("linear", "weight", w_in, "x", x_in);
  const int64_t K = x_in.shape.back(), N = w_in.size(0);
  GC_CHECK(w_in.size(1) == K, ValueError, "linear: x has K = ", K,
           " (its last dimension) but weight has K = ", w_in.size(1), " (weight is [N, K] = ",
           w_in.shape_str(), ")");
  check_bias(x_in, bias, N);
  if (!x_in.device.is_cpu()) return linear_cuda(x_in, w_in, bias, out);

  // The weight is read in place when its rows are contiguous (row-strided slices included); a
  // transposed or column-strided weight is copied once for this call, never misread.
  Tensor w_keep;
  const TensorView& w = dense_rows(w_in, w_keep);
  const int64_t ldw = N > 1 ? w.stride(0) : K;
  return run_linear(x_in, N, bias, out,
                    [&](const float* x, int64_t ldx, int64_t rows, int64_t k, const float* b,
                        float* y, int64_t ldo) {
                      cpu::linear(x, ldx, rows, k, w.dtype, w.data, ldw, N, b, y, ldo);
                    });
}

Tensor linear_quantized(const TensorView& x_in, const TensorView& data, const std::string& qtype,
                        int64_t n, int64_t k, const TensorView* bias, const TensorView* out,
                        Activations activations) {
  check_x(x_in);
  Tensor w_keep;
  const TensorView* w = nullptr;
  const cpu::QType t = check_quantized("linear: weight", data, qtype, n, k, &w, w_keep);
  const int64_t K = x_in.shape.back(), N = n;
  GC_CHECK(k == K, ValueError, "linear: x has K = ", K, " (its last dimension) but the ", qtype,
           " weight has K = ", k, " (weight is [N, K] = [", n, ", ", k, "])");
  check_bias_and_device(x_in, bias, N, "quantized linear");
  return run_linear(x_in, N, bias, out,
                    [&](const float* x, int64_t ldx, int64_t rows, int64_t kk, const float* b,
                        float* y, int64_t ldo) {
                      if (activations == Activations::kInt8) {
                        cpu::linear_quantized_int8(x, ldx, rows, kk, t, w->ptr<const uint8_t>(),
                                                   N, b, y, ldo);
                      } else {
                        cpu::linear_quantized(x, ldx, rows, kk, t, w->ptr<const uint8_t>(), N, b,
                                              y, ldo);
                      }
                    });
}

Activations activations_mode(const std::string& name, const char* who) {
  Activations a;
  GC_CHECK(parse_activations(name, &a), ValueError, who, ": activations must be 'float32' (exact) "
           "or 'int8' (rounded per block before quantized products), got '", name, "'");
  return a;
}

}  // namespace gemmacpp::ops
