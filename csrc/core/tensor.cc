#include "csrc/core/tensor.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "csrc/core/device_memory.h"
#include "csrc/core/error.h"
#include "csrc/core/host_blocks.h"


namespace gemmacpp {

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

bool TensorView::is_contiguous() const {
  int64_t expected = 1;
  for (int i = ndim() - 1; i >= 0; --i) {
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

bool TensorView::rows_contiguous() const {
  if (ndim() == 0) return true;
  if (shape.back() != 1 && strides.back() != 1) return false;
  for (int i = 0; i < ndim() - 1; ++i)
    if (strides[i] < 0) return false;
  return true;
}

std::string TensorView::shape_str() const {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < ndim(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  GC_CHECK(a >= 0 && b >= 0 && !__builtin_mul_overflow(a, b, &r), ValueError, what, ": ", a,
           " x ", b, " elements overflow a 64-bit size");
  return r;
}

int64_t checked_numel(const std::vector<int64_t>& shape, const char* what) {
  int64_t n = 1;
  for (int64_t s : shape) {
    GC_CHECK(s >= 0, ValueError, what, ": negative dimension ", s, " in shape");
    n = checked_mul(n, s, what);
  }
  return n;
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  checked_numel(shape, "contiguous_strides");
  std::vector<int64_t> strides(shape.size());
  int64_t s = 1;
  for (int i = int(shape.size()) - 1; i >= 0; --i) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

Tensor Tensor::empty(DType dtype, std::vector<int64_t> shape, Device device) {
  Tensor t;
  // Every size product checked: an overflowed count would allocate a small buffer that the
  // kernels then write far past.
  const int64_t numel = checked_numel(shape, "tensor allocation");
  const int64_t nbytes = checked_mul(numel, dtype_size(dtype), "tensor allocation");
  GC_CHECK(nbytes <= INT64_MAX - 128, ValueError, "tensor allocation: ", nbytes,
           " bytes overflow a 64-bit size");
  t.view_.dtype = dtype;
  t.view_.device = device;
  t.view_.strides = contiguous_strides(shape);
  t.view_.shape = std::move(shape);
  // Round up so that kernels may over-read the last vector of the buffer harmlessly.
  const size_t bytes = (size_t(nbytes) + 127) / 64 * 64;
  if (device.is_cpu()) {
    // Large buffers go on 2 MiB boundaries with transparent huge pages (as NumPy does) and come
    // from a bounded cache of freed ones (host_blocks.h): a fresh 40 MB result otherwise costs
    // ten thousand page faults and the kernel's zero-fill, as much time as a streaming op.
    const bool large = bytes >= 2 * host_blocks::kAlign;
    void* p = large ? host_blocks::acquire(bytes) : std::aligned_alloc(64, bytes);
    GC_CHECK(p != nullptr, MemoryError, "out of memory allocating ", bytes, " bytes for a ",
             t.view_.shape_str(), " ", dtype_name(dtype), " tensor");
    t.storage_ = large ? std::shared_ptr<void>(p, [bytes](void* q) { host_blocks::release(q, bytes); })
                       : std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  } else {
    t.storage_ = device_memory::allocate_cuda(bytes, device.index);
  }
  t.view_.data = t.storage_.get();
  return t;
}

Tensor Tensor::zeros(DType dtype, std::vector<int64_t> shape, Device device) {
  Tensor t = empty(dtype, std::move(shape), device);
  GC_CHECK(device.is_cpu(), NotImplementedError, "Tensor::zeros on ", device.str());
  std::memset(t.view_.data, 0, t.nbytes());
  return t;
}

namespace {
// Walks every element of `shape` in C order, calling fn(src_offset, dst_offset) in elements.
template <class Fn>
void for_each_offset(const std::vector<int64_t>& shape, const std::vector<int64_t>& a,
                     const std::vector<int64_t>& b, Fn fn) {
  const int nd = int(shape.size());
  for (int64_t s : shape) if (s == 0) return;
  std::vector<int64_t> idx(nd, 0);
  int64_t oa = 0, ob = 0;
  for (;;) {
    fn(oa, ob);
    int d = nd - 1;
    for (; d >= 0; --d) {
      if (++idx[d] < shape[d]) { oa += a[d]; ob += b[d]; break; }
      oa -= a[d] * (shape[d] - 1);
      ob -= b[d] * (shape[d] - 1);
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}
}  // namespace

void copy_into(const TensorView& src, const TensorView& dst) {
  GC_CHECK(src.device.is_cpu() && dst.device.is_cpu(), NotImplementedError,
           "copy_into on a non-CPU tensor");
  GC_CHECK(src.dtype == dst.dtype && src.shape == dst.shape, ValueError,
           "copy_into: mismatched dtype or shape");
  const int es = dtype_size(src.dtype);
  const char* s = static_cast<const char*>(src.data);
  char* d = static_cast<char*>(dst.data);
  for_each_offset(src.shape, src.strides, dst.strides, [&](int64_t os, int64_t od) {
    std::memcpy(d + od * es, s + os * es, es);
  });
}

Tensor contiguous_copy(const TensorView& v) {
  Tensor t = Tensor::empty(v.dtype, v.shape, v.device);
  copy_into(v, t.view());
  return t;
}

}  // namespace gemmacpp
