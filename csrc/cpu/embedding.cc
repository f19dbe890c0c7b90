#include "csrc/cpu/embedding.h"

#include "csrc/cpu/quant.h"

namespace gemmacpp::cpu {

void embedding_rows(DType dt, const void* table, const int64_t* ids, int64_t M, int64_t d, float scale,
                    float* out) {
  const auto* t = static_cast<const uint8_t*>(table);
  for (int64_t m = 0; m < M; ++m) {
    float* row = out + m * d;
    const int64_t base = ids[m] * d;
    for (int64_t j = 0; j < d; ++j) row[j] = load_f32(dt, t, base + j) * scale;
  }
}

void embedding_rows_quantized(QType t, const uint8_t* table, uint64_t row_bytes, const int64_t* ids,
                              int64_t M, int64_t d, float scale, float* out) {
  for (int64_t m = 0; m < M; ++m) {
    float* row = out + m * d;
    dequantize(t, table + uint64_t(ids[m]) * row_bytes, 1, d, row);
    for (int64_t j = 0; j < d; ++j) row[j] *= scale;
  }
}

}  // namespace gemmacpp::cpu
