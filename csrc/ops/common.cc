#include "csrc/ops/common.h"

namespace gemmacpp::ops {

void check_float(const char* op, const char* name, const TensorView& t) {
  GC_CHECK(is_float_activation(t.dtype), TypeError, op, ": ", name,
           " must be float32, float16 or bfloat16, got ", dtype_name(t.dtype));
}

void check_rank(const char* op, const char* name, const TensorView& t, int rank,
                const char* layout) {
  GC_CHECK(t.ndim() == rank, ValueError, op, ": ", name, " must have ", rank, " dimensions ",
           layout, ", got shape ", t.shape_str());
}

void check_same_dtype(const char* op, const char* name, const TensorView& t, const char* ref_name,
                      const TensorView& ref) {
  GC_CHECK(t.dtype == ref.dtype, TypeError, op, ": ", name, " has dtype ", dtype_name(t.dtype),
           " but ", ref_name, " has ", dtype_name(ref.dtype), "; they must match");
}

void check_same_device(const char* op, const char* name, const TensorView& t,
                       const char* ref_name, const TensorView& ref) {
  GC_CHECK(t.device == ref.device, ValueError, op, ": ", name, " is on ", t.device.str(), " but ",
           ref_name, " is on ", ref.device.str(), "; they must be on the same device");
}

void check_shape(const char* op, const char* name, const TensorView& t,
                 const std::vector<int64_t>& expected) {
  if (t.shape == expected) return;
  TensorView e;
  e.shape = expected;
  throw ValueError(str_cat(op, ": ", name, " must have shape ", e.shape_str(), ", got ",
                           t.shape_str()));
}

std::vector<float> float_vector(const TensorView& t) {
  std::vector<float> v(size_t(t.size(0)));
  const int64_t s = t.stride(0);
  for (int64_t i = 0; i < t.size(0); ++i) v[size_t(i)] = load_f32(t.dtype, t.data, i * s);
  return v;
}

const TensorView& dense(const TensorView& t, Tensor& keep) {
  if (t.is_contiguous()) return t;
  keep = contiguous_copy(t);
  return keep.view();
}

const TensorView& dense_rows(const TensorView& t, Tensor& keep) {
  if (t.rows_contiguous()) return t;
  keep = contiguous_copy(t);
  return keep.view();
}

Output::Output(const char* op, const TensorView* out, DType dtype, std::vector<int64_t> shape,
               Device device, bool need_contiguous)
    : out_(out) {
  if (out == nullptr) {
    owned_ = Tensor::empty(dtype, std::move(shape), device);
    target_ = owned_.view();
    return;
  }
  GC_CHECK(out->dtype == dtype, TypeError, op, ": out has dtype ", dtype_name(out->dtype),
           ", expected ", dtype_name(dtype));
  check_shape(op, "out", *out, shape);
  GC_CHECK(out->device == device, ValueError, op, ": out is on ", out->device.str(),
           ", expected ", device.str());
  GC_CHECK(out->writable, ValueError, op, ": out is read-only");
  if (need_contiguous ? out->is_contiguous() : out->rows_contiguous()) {
    target_ = *out;
  } else {
    owned_ = Tensor::empty(dtype, std::move(shape), device);
    target_ = owned_.view();
  }
}

Tensor Output::finish() {
  if (out_ == nullptr) return owned_;
  if (owned_.defined()) copy_into(owned_.view(), *out_);
  return Tensor();
}

}  // namespace gemmacpp::ops
