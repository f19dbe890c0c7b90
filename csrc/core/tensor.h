// TensorView: a non-owning, strided view of memory that someone else owns (a NumPy array, a
// DLPack producer). Tensor: a view that owns its (contiguous, 64-byte aligned) storage.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "csrc/core/dtype.h"

namespace gemmacpp {

struct Device {
  enum class Kind : uint8_t { kCPU, kCUDA };
  Kind kind = Kind::kCPU;
  int index = 0;
  bool is_cpu() const { return kind == Kind::kCPU; }
  bool is_cuda() const { return kind == Kind::kCUDA; }
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;
};

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Device device;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements, may be zero or negative
  bool writable = true;

  int ndim() const { return int(shape.size()); }
  int64_t size(int dim) const { return shape[dim < 0 ? dim + ndim() : dim]; }
  int64_t stride(int dim) const { return strides[dim < 0 ? dim + ndim() : dim]; }
  int64_t numel() const;
  bool is_contiguous() const;  // C order
  // Last dimension contiguous; the others may have any non-negative stride (row-strided).
  bool rows_contiguous() const;
  std::string shape_str() const;  // "[2, 3, 4]"
  template <class T> T* ptr() const { return static_cast<T*>(data); }
};

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(DType dtype, std::vector<int64_t> shape, Device device = {});
  static Tensor zeros(DType dtype, std::vector<int64_t> shape, Device device = {});
  const TensorView& view() const { return view_; }
  TensorView& view() { return view_; }
  bool defined() const { return storage_ != nullptr; }
  size_t nbytes() const { return size_t(view_.numel()) * dtype_size(view_.dtype); }

 private:
  TensorView view_;
  std::shared_ptr<void> storage_;
};

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);

// a * b, or a ValueError naming `what` when the product of these non-negative sizes does not fit
// in int64 (a shape from user input or a file may ask for more elements than can be counted).
int64_t checked_mul(int64_t a, int64_t b, const char* what);
// The number of elements of a shape of non-negative sizes, checked like checked_mul.
int64_t checked_numel(const std::vector<int64_t>& shape, const char* what);

// A C-contiguous copy of a CPU view with any strides (used where a kernel needs dense rows).
Tensor contiguous_copy(const TensorView& v);

// Copies src into dst (same dtype and shape, both on the CPU, any strides).
void copy_into(const TensorView& src, const TensorView& dst);

}  // namespace gemmacpp
