#include "csrc/core/dlpack.h"

#include <cstring>
#include <vector>

#include "csrc/core/error.h"

namespace gemmacpp::dlpack {
namespace {

DType dtype_from(const DLDataType& t, const char* what) {
  GC_CHECK(t.lanes == 1, TypeError, what, ": vector dtypes (lanes=", t.lanes, ") are not supported");
  switch (t.code) {
    case kDLFloat:
      if (t.bits == 32) return DType::kF32;
      if (t.bits == 16) return DType::kF16;
      if (t.bits == 64) return DType::kF64;
      break;
    case kDLBfloat:
      if (t.bits == 16) return DType::kBF16;
      break;
    case kDLInt:
      if (t.bits == 32) return DType::kI32;
      if (t.bits == 64) return DType::kI64;
      if (t.bits == 8) return DType::kI8;
      break;
    case kDLUInt:
      if (t.bits == 8) return DType::kU8;
      break;
    case kDLBool:
      if (t.bits == 8) return DType::kBool;
      break;
  }
  throw TypeError(str_cat(what, ": unsupported DLPack dtype (code ", int(t.code), ", bits ",
                          int(t.bits), ")"));
}

DLDataType dl_dtype(DType t) {
  switch (t) {
    case DType::kF32: return {kDLFloat, 32, 1};
    case DType::kF16: return {kDLFloat, 16, 1};
    case DType::kBF16: return {kDLBfloat, 16, 1};
    case DType::kF64: return {kDLFloat, 64, 1};
    case DType::kI8: return {kDLInt, 8, 1};
    case DType::kI32: return {kDLInt, 32, 1};
    case DType::kI64: return {kDLInt, 64, 1};
    case DType::kU8: return {kDLUInt, 8, 1};
    case DType::kBool: return {kDLBool, 8, 1};
  }
  return {kDLFloat, 32, 1};
}

// What an exported tensor owns: the storage (through the Tensor) and the shape/stride arrays.
struct Export {
  Tensor tensor;
  std::vector<int64_t> shape, strides;
};

template <class Managed>
void fill(Managed* m, Export* ctx) {
  const TensorView& v = ctx->tensor.view();
  ctx->shape = v.shape;
  ctx->strides = v.strides;
  DLTensor& t = m->dl_tensor;
  t.data = v.data;
  device_of(v.device, &t.device.device_type, &t.device.device_id);
  t.ndim = v.ndim();
  t.dtype = dl_dtype(v.dtype);
  t.shape = ctx->shape.data();
  t.strides = ctx->strides.data();
  t.byte_offset = 0;
  m->manager_ctx = ctx;
  m->deleter = [](Managed* self) {
    delete static_cast<Export*>(self->manager_ctx);
    delete self;
  };
}

}  // namespace

void device_of(const Device& d, int32_t* type, int32_t* id) {
  *type = d.is_cpu() ? kDLCPU : kDLCUDA;
  *id = d.is_cpu() ? 0 : d.index;
}

TensorView view_of(const DLTensor& t, bool read_only, const char* what) {
  TensorView v;
  v.dtype = dtype_from(t.dtype, what);
  switch (t.device.device_type) {
    case kDLCPU: case kDLCUDAHost: v.device = {Device::Kind::kCPU, 0}; break;
    case kDLCUDA: case kDLCUDAManaged: v.device = {Device::Kind::kCUDA, t.device.device_id}; break;
    default:
      throw TypeError(str_cat(what, ": unsupported DLPack device type ", t.device.device_type,
                              " (gemmacpp takes CPU and CUDA tensors)"));
  }
  GC_CHECK(t.ndim >= 0 && t.ndim <= 16, ValueError, what, ": bad rank ", t.ndim);
  v.shape.assign(t.shape, t.shape + t.ndim);
  checked_numel(v.shape, what);  // a producer's sizes: non-negative, their product countable
  if (t.strides) v.strides.assign(t.strides, t.strides + t.ndim);
  else v.strides = contiguous_strides(v.shape);
  v.data = static_cast<char*>(t.data) + t.byte_offset;
  v.writable = !read_only;
  return v;
}

DLManagedTensor* export_legacy(const Tensor& t) {
  auto* m = new DLManagedTensor{};
  fill(m, new Export{t, {}, {}});
  return m;
}

DLManagedTensorVersioned* export_versioned(const Tensor& t) {
  auto* m = new DLManagedTensorVersioned{};
  m->version = {kMajorVersion, kMinorVersion};
  m->flags = 0;
  fill(m, new Export{t, {}, {}});
  return m;
}

}  // namespace gemmacpp::dlpack
