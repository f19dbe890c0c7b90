#include "csrc/cuda/cublaslt.h"

#include <dlfcn.h>

#include <mutex>
#include <string>
#include <vector>

#include "csrc/core/error.h"

namespace gemmacpp::cuda::lt {
namespace {

template <class Fn>
void bind(void* lib, const char* name, Fn*& fn, std::string& missing) {
  fn = reinterpret_cast<Fn*>(dlsym(lib, name));
  if (fn == nullptr) missing += std::string(missing.empty() ? "" : ", ") + name;
}

struct Loaded {
  Api api{};
  std::string error;  // empty when every entry point was found
};

Loaded load() {
  Loaded r;
  void* lib = nullptr;
  for (const char* name : {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"}) {
    lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib != nullptr) break;
  }
  if (lib == nullptr) {
    r.error = "cannot load cuBLASLt (libcublasLt.so.13): install the CUDA toolkit's cuBLAS or "
              "the nvidia-cublas wheel, or import torch first";
    return r;
  }
  std::string missing;
  Api& a = r.api;
  bind(lib, "cublasLtCreate", a.create, missing);
  bind(lib, "cublasLtMatmulDescCreate", a.matmul_desc_create, missing);
  bind(lib, "cublasLtMatmulDescDestroy", a.matmul_desc_destroy, missing);
  bind(lib, "cublasLtMatmulDescSetAttribute", a.matmul_desc_set_attribute, missing);
  bind(lib, "cublasLtMatrixLayoutCreate", a.matrix_layout_create, missing);
  bind(lib, "cublasLtMatrixLayoutDestroy", a.matrix_layout_destroy, missing);
  bind(lib, "cublasLtMatmulPreferenceCreate", a.preference_create, missing);
  bind(lib, "cublasLtMatmulPreferenceDestroy", a.preference_destroy, missing);
  bind(lib, "cublasLtMatmulPreferenceSetAttribute", a.preference_set_attribute, missing);
  bind(lib, "cublasLtMatmulAlgoGetHeuristic", a.algo_get_heuristic, missing);
  bind(lib, "cublasLtMatmul", a.matmul, missing);
  if (!missing.empty()) r.error = "cuBLASLt lacks " + missing;
  return r;  // the library stays loaded for the process
}

}  // namespace

const Api& api() {
  static const Loaded loaded = load();  // thread-safe, once
  GC_CHECK(loaded.error.empty(), ValueError, loaded.error);
  return loaded.api;
}

Handle handle(int device) {
  static std::mutex mu;
  static std::vector<Handle> handles;
  const Api& a = api();
  std::lock_guard<std::mutex> lock(mu);
  if (handles.size() <= size_t(device)) handles.resize(size_t(device) + 1, nullptr);
  if (handles[size_t(device)] == nullptr) {
    Handle h = nullptr;
    const Status s = a.create(&h);  // binds to the current device, set by the caller
    GC_CHECK(s == 0, ValueError, "cublasLtCreate failed with status ", s);
    handles[size_t(device)] = h;
  }
  return handles[size_t(device)];
}

}  // namespace gemmacpp::cuda::lt
