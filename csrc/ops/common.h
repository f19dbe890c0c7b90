// Argument checks and output handling shared by the op entry points. Every message names the op
// and the argument, so that a Python user sees which call and which array was wrong.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "csrc/core/error.h"
#include "csrc/core/tensor.h"

namespace gemmacpp::ops {

// float32, float16 or bfloat16.
void check_float(const char* op, const char* name, const TensorView& t);
void check_rank(const char* op, const char* name, const TensorView& t, int rank,
                const char* layout);
void check_same_dtype(const char* op, const char* name, const TensorView& t, const char* ref_name,
                      const TensorView& ref);
void check_same_device(const char* op, const char* name, const TensorView& t,
                       const char* ref_name, const TensorView& ref);
void check_shape(const char* op, const char* name, const TensorView& t,
                 const std::vector<int64_t>& expected);

// A 1-D float32, float16 or bfloat16 view of any stride as a float32 vector (a small copy: biases,
// thresholds).
std::vector<float> float_vector(const TensorView& t);

// `t` itself when it is C-contiguous, else a contiguous copy kept alive in `keep`.
const TensorView& dense(const TensorView& t, Tensor& keep);
// `t` itself when its rows (last dimension) are contiguous, else a contiguous copy in `keep`.
const TensorView& dense_rows(const TensorView& t, Tensor& keep);

// Where an op writes its result: the caller's `out=` (checked for dtype, shape, device and
// writability; a strided `out` is written through a temporary), or a new tensor.
class Output {
 public:
  Output(const char* op, const TensorView* out, DType dtype, std::vector<int64_t> shape,
         Device device, bool need_contiguous = true);
  const TensorView& view() const { return target_; }
  // Finishes the op: copies a temporary back into `out=`, and returns the new tensor (undefined
  // when the result went to `out=`).
  Tensor finish();

 private:
  const TensorView* out_;
  Tensor owned_;
  TensorView target_;
};

}  // namespace gemmacpp::ops
