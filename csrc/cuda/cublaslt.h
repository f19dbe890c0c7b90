// cuBLASLt, loaded on first use with dlopen. The module links the CUDA runtime statically so that
// `import gemmacpp` works on machines without CUDA libraries; cuBLASLt is a shared library only
// (and this CUDA install ships no headers for it), so the few entry points the linear op needs
// are declared here with the types and constants of cublasLt.h (CUDA 12/13 ABI).
#pragma once

#include <cstddef>
#include <cstdint>

namespace gemmacpp::cuda::lt {

using Status = int;  // cublasStatus_t; 0 = CUBLAS_STATUS_SUCCESS
using Handle = struct HandleOpaque*;
using MatmulDesc = struct MatmulDescOpaque*;
using MatrixLayout = struct MatrixLayoutOpaque*;
using Preference = struct PreferenceOpaque*;

struct MatmulAlgo {
  uint64_t data[8];
};
struct HeuristicResult {
  MatmulAlgo algo;
  size_t workspace_size;
  Status state;
  float waves_count;
  int reserved[4];
};

// cudaDataType_t
constexpr int kR32F = 0, kR16F = 2, kR16BF = 14;
// cublasComputeType_t: float32 accumulation, no TF32 or half-precision shortcuts
constexpr int kCompute32F = 68;
// cublasOperation_t
constexpr int kOpN = 0, kOpT = 1;
// cublasLtMatmulDescAttributes_t
constexpr int kDescTransA = 3, kDescTransB = 4;
// cublasLtMatmulPreferenceAttributes_t
constexpr int kPrefMaxWorkspaceBytes = 1;

struct Api {
  Status (*create)(Handle*);
  Status (*matmul_desc_create)(MatmulDesc*, int compute_type, int scale_type);
  Status (*matmul_desc_destroy)(MatmulDesc);
  Status (*matmul_desc_set_attribute)(MatmulDesc, int attr, const void* buf, size_t size);
  Status (*matrix_layout_create)(MatrixLayout*, int type, uint64_t rows, uint64_t cols,
                                 int64_t ld);
  Status (*matrix_layout_destroy)(MatrixLayout);
  Status (*preference_create)(Preference*);
  Status (*preference_destroy)(Preference);
  Status (*preference_set_attribute)(Preference, int attr, const void* buf, size_t size);
  Status (*algo_get_heuristic)(Handle, MatmulDesc, MatrixLayout a, MatrixLayout b,
                               MatrixLayout c, MatrixLayout d, Preference, int requested,
                               HeuristicResult* results, int* returned);
  Status (*matmul)(Handle, MatmulDesc, const void* alpha, const void* a, MatrixLayout a_desc,
                   const void* b, MatrixLayout b_desc, const void* beta, const void* c,
                   MatrixLayout c_desc, void* d, MatrixLayout d_desc, const MatmulAlgo* algo,
                   void* workspace, size_t workspace_bytes, void* stream);
};

// The loaded library's entry points; throws ValueError saying what is missing when cuBLASLt
// cannot be loaded (it is looked up as libcublasLt.so.13, .so.12, then .so, so that one already
// loaded by torch's nvidia-cublas wheel is found too).
const Api& api();
// A cuBLASLt handle for `device`, created once per device and kept for the process.
Handle handle(int device);

}  // namespace gemmacpp::cuda::lt
