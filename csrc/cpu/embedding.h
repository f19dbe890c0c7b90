// Embedding lookup: rows of a token table gathered, converted to float32 and scaled. The table is
// read in place in its stored type (float32, float16, bfloat16, or GGML blocks).
#pragma once

#include <cstdint>

#include "csrc/core/dtype.h"
#include "csrc/core/qtype.h"

namespace gemmacpp::cpu {

// out[m, :] = table[ids[m], :] * scale for a [V, d] table of dtype dt; ids are in range.
void embedding_rows(DType dt, const void* table, const int64_t* ids, int64_t M, int64_t d, float scale,
                    float* out);
// The same for a table of GGML blocks of type t, row_bytes per row.
void embedding_rows_quantized(QType t, const uint8_t* table, uint64_t row_bytes, const int64_t* ids,
                              int64_t M, int64_t d, float scale, float* out);

}  // namespace gemmacpp::cpu
