// A mixture-of-experts layer's stack of E weight matrices, each [N, K], stored back to back as a
// model file holds them (HF `experts.gate_up_proj [E, 2F, D]`, GGUF `blk.N.ffn_gate_up_exps`):
// float32, float16 or bfloat16 values, or rows of GGML blocks. Expert e's matrix starts
// e * matrix_bytes() into data and is read in place. Shared by the moe op and the blocks that
// bind expert weights.
#pragma once

#include <cstdint>

#include "csrc/core/dtype.h"
#include "csrc/core/qtype.h"

namespace gemmacpp {

struct ExpertStack {
  const void* data = nullptr;
  int64_t E = 0, N = 0, K = 0;
  bool quantized = false;
  DType dtype = DType::kF32;   // the values' type, when not quantized
  QType qtype = QType::kQ8_0;  // the blocks' type, when quantized (K a multiple of its block size)

  static ExpertStack dense(const void* data, int64_t E, int64_t N, int64_t K, DType dtype) {
    ExpertStack s;
    s.data = data, s.E = E, s.N = N, s.K = K, s.dtype = dtype;
    return s;
  }
  static ExpertStack blocks(const void* data, int64_t E, int64_t N, int64_t K, QType qtype) {
    ExpertStack s;
    s.data = data, s.E = E, s.N = N, s.K = K, s.quantized = true, s.qtype = qtype;
    return s;
  }

  int64_t row_bytes() const {
    if (!quantized) return K * dtype_size(dtype);
    const QTypeInfo info = qtype_info(qtype);
    return K / info.block_values * info.block_bytes;
  }
  int64_t matrix_bytes() const { return N * row_bytes(); }
  int64_t total_bytes() const { return E * matrix_bytes(); }
  // Row n of expert e's matrix.
  const uint8_t* row(int64_t e, int64_t n) const {
    return static_cast<const uint8_t*>(data) + e * matrix_bytes() + n * row_bytes();
  }
};

}  // namespace gemmacpp
