// The DLPack ABI (v1.0, with the pre-1.0 unversioned form), written from the specification, and
// the conversions between DLPack tensors and gemmacpp views. Capsule handling is in the bindings.
#pragma once

#include <cstdint>

#include "csrc/core/tensor.h"

extern "C" {
struct DLDevice { int32_t device_type; int32_t device_id; };
struct DLDataType { uint8_t code; uint8_t bits; uint16_t lanes; };
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // may be null: C-contiguous
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};
struct DLPackVersion { uint32_t major; uint32_t minor; };
struct DLManagedTensorVersioned {
  DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(DLManagedTensorVersioned* self);
  uint64_t flags;
  DLTensor dl_tensor;
};
}

namespace gemmacpp::dlpack {

constexpr int32_t kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13;
constexpr uint8_t kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBfloat = 4, kDLBool = 6;
constexpr uint64_t kFlagReadOnly = 1, kFlagIsCopied = 2;
constexpr uint32_t kMajorVersion = 1, kMinorVersion = 0;

// A view of a producer's tensor; throws TypeError/ValueError naming `what` for unsupported
// dtypes, devices or layouts.
TensorView view_of(const DLTensor& t, bool read_only, const char* what);

// Hands an owned tensor to a consumer. The returned object keeps the storage alive until the
// consumer calls its deleter.
DLManagedTensor* export_legacy(const Tensor& t);
DLManagedTensorVersioned* export_versioned(const Tensor& t);

void device_of(const Device& d, int32_t* type, int32_t* id);

}  // namespace gemmacpp::dlpack
