#include "csrc/cuda/linear.h"

#include <cuda_runtime.h>

#include "csrc/core/error.h"
#include "csrc/cuda/common.cuh"
#include "csrc/cuda/cublaslt.h"
#include "csrc/cuda/dtype_dispatch.cuh"
#include "csrc/cuda/runtime.h"

namespace gemmacpp::cuda {
namespace {

constexpr int kThreads = 256;
constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // what cuBLAS suggests for sm_90

int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return int(b < 65535 ? b : 65535);
}

// y[m, n] = bias[n] (or 0): the matmul then accumulates onto it with beta = 1.
template <class B>
__global__ void fill_bias_kernel(float* y, int64_t ldo, int64_t M, int64_t N, const B* bias,
                                 int64_t bs) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < M * N;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = e / N, n = e % N;
    y[m * ldo + n] = bias ? to_f32(bias[n * bs]) : 0.0f;
  }
}

// Dense [M, K] copy of x in the weight's 16-bit type.
template <class T>
__global__ void round_rows_kernel(const float* x, int64_t ldx, int64_t M, int64_t K, T* out) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < M * K;
       e += int64_t(gridDim.x) * blockDim.x) {
    out[e] = from_f32<T>(x[(e / K) * ldx + e % K]);
  }
}

// Stream-ordered scratch on the default stream, freed (stream-ordered) when it goes out of scope.
struct Scratch {
  void* p = nullptr;
  explicit Scratch(size_t bytes) {
    if (bytes == 0) return;
    const cudaError_t err = cudaMallocAsync(&p, bytes, cudaStreamLegacy);
    GC_CHECK(err == cudaSuccess, ValueError, "linear: cudaMallocAsync of ", bytes,
             " bytes failed: ", cudaGetErrorString(err));
  }
  ~Scratch() {
    if (p) cudaFreeAsync(p, cudaStreamLegacy);
  }
};

// The cuBLASLt descriptors of one call, destroyed on every path out.
struct Descriptors {
  const lt::Api& api;
  lt::MatmulDesc op = nullptr;
  lt::MatrixLayout a = nullptr, b = nullptr, c = nullptr;
  lt::Preference pref = nullptr;
  explicit Descriptors(const lt::Api& x) : api(x) {}
  ~Descriptors() {
    if (pref) api.preference_destroy(pref);
    if (c) api.matrix_layout_destroy(c);
    if (b) api.matrix_layout_destroy(b);
    if (a) api.matrix_layout_destroy(a);
    if (op) api.matmul_desc_destroy(op);
  }
};

void check_status(lt::Status s, const char* what) {
  GC_CHECK(s == 0, ValueError, "linear: ", what, " failed with cuBLAS status ", s);
}

int lt_type(DType t) {
  return t == DType::kF32 ? lt::kR32F : t == DType::kF16 ? lt::kR16F : lt::kR16BF;
}

}  // namespace

void linear(const float* x, int64_t ldx, int64_t M, int64_t K, DType wdt, const void* w,
            int64_t ldw, int64_t N, DType bdt, const void* bias, int64_t bias_stride, float* y,
            int64_t ldo, int device) {
  if (M == 0 || N == 0) return;
  GC_CHECK(cudaSetDevice(device) == cudaSuccess, ValueError, "cannot use CUDA device ", device);
  const lt::Api& api = lt::api();  // before any launch: fail early when cuBLASLt is missing
  const lt::Handle handle = lt::handle(device);

  if (bias != nullptr || K == 0) {
    visit_float(bias != nullptr ? bdt : DType::kF32, [&](auto tag) {
      using B = decltype(tag);
      fill_bias_kernel<B><<<blocks_for(M * N), kThreads, 0, cudaStreamLegacy>>>(
          y, ldo, M, N, static_cast<const B*>(bias), bias_stride);
    });
    check_launch("linear (bias)");
  }
  if (K == 0) return;  // an empty sum: the bias alone

  // B operand: x itself, or x rounded to the weight's 16-bit type.
  Scratch rounded(wdt == DType::kF32 ? 0 : size_t(M * K) * 2);
  const void* xb = x;
  int64_t ldb = ldx;
  if (wdt != DType::kF32) {
    visit_float(wdt, [&](auto tag) {
      using T = decltype(tag);
      round_rows_kernel<T><<<blocks_for(M * K), kThreads, 0, cudaStreamLegacy>>>(
          x, ldx, M, K, static_cast<T*>(rounded.p));
    });
    check_launch("linear (rounding x)");
    xb = rounded.p;
    ldb = K;
  }

  // cuBLASLt is column-major: row-major y [M, N] is a column-major N x M matrix (ld ldo), and
  // y^T = w x^T, with w read as a column-major K x N matrix (ld ldw) transposed and x as a K x M
  // one (ld ldb).
  Descriptors d(api);
  check_status(api.matmul_desc_create(&d.op, lt::kCompute32F, lt::kR32F), "MatmulDescCreate");
  const int op_t = lt::kOpT, op_n = lt::kOpN;
  check_status(api.matmul_desc_set_attribute(d.op, lt::kDescTransA, &op_t, sizeof(op_t)),
               "setting TRANSA");
  check_status(api.matmul_desc_set_attribute(d.op, lt::kDescTransB, &op_n, sizeof(op_n)),
               "setting TRANSB");
  const int wt = lt_type(wdt);
  check_status(api.matrix_layout_create(&d.a, wt, uint64_t(K), uint64_t(N), ldw), "layout of w");
  check_status(api.matrix_layout_create(&d.b, wt, uint64_t(K), uint64_t(M), ldb), "layout of x");
  check_status(api.matrix_layout_create(&d.c, lt::kR32F, uint64_t(N), uint64_t(M), ldo),
               "layout of y");
  check_status(api.preference_create(&d.pref), "MatmulPreferenceCreate");
  const uint64_t ws = kWorkspaceBytes;
  check_status(api.preference_set_attribute(d.pref, lt::kPrefMaxWorkspaceBytes, &ws, sizeof(ws)),
               "setting the workspace size");
  lt::HeuristicResult best{};
  int found = 0;
  check_status(api.algo_get_heuristic(handle, d.op, d.a, d.b, d.c, d.c, d.pref, 1, &best, &found),
               "MatmulAlgoGetHeuristic");
  GC_CHECK(found > 0, ValueError, "linear: cuBLASLt has no algorithm for M = ", M, ", N = ", N,
           ", K = ", K, " with row strides ", ldx, " / ", ldw, " / ", ldo,
           " (16-bit weights need 16-byte aligned rows)");
  Scratch workspace(best.workspace_size);
  const float alpha = 1.0f, beta = bias != nullptr ? 1.0f : 0.0f;
  check_status(api.matmul(handle, d.op, &alpha, w, d.a, xb, d.b, &beta, y, d.c, y, d.c, &best.algo,
                          workspace.p, best.workspace_size, cudaStreamLegacy),
               "cublasLtMatmul");
}

}  // namespace gemmacpp::cuda
