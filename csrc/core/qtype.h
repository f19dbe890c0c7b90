// GGML's block-quantized weight types that gemmacpp's kernels read, with their block sizes: a
// quantized row of K values is K / block_values blocks of block_bytes each, stored back to back.
// Shared by the file readers, the ops and the kernels (the byte layouts are in
// csrc/cpu/quant_blocks.h, beside the code that decodes them).
#pragma once

#include <cstdint>
#include <string>

namespace gemmacpp {

enum class QType : uint8_t { kQ8_0, kQ4_0, kQ4_1, kQ5_0, kQ5_1, kQ2_K, kQ3_K, kQ4_K, kQ5_K, kQ6_K };

struct QTypeInfo {
  const char* name;
  int block_values;  // values per block: 32, or 256 for the K-quants' super-blocks
  int block_bytes;
};

inline QTypeInfo qtype_info(QType t) {
  switch (t) {
    case QType::kQ8_0: return {"Q8_0", 32, 34};    // f16 d, int8 q[32]
    case QType::kQ4_0: return {"Q4_0", 32, 18};    // f16 d, q[16] (two 4-bit values a byte)
    case QType::kQ4_1: return {"Q4_1", 32, 20};    // f16 d, f16 m, q[16]
    case QType::kQ5_0: return {"Q5_0", 32, 22};    // f16 d, u32 high bits, q[16]
    case QType::kQ5_1: return {"Q5_1", 32, 24};    // f16 d, f16 m, u32 high bits, q[16]
    case QType::kQ2_K: return {"Q2_K", 256, 84};   // scales[16], q[64], f16 d, f16 dmin
    case QType::kQ3_K: return {"Q3_K", 256, 110};  // hmask[32], q[64], scales[12], f16 d
    case QType::kQ4_K: return {"Q4_K", 256, 144};  // f16 d, f16 dmin, scales[12], q[128]
    case QType::kQ5_K: return {"Q5_K", 256, 176};  // f16 d, f16 dmin, scales[12], qh[32], q[128]
    case QType::kQ6_K: return {"Q6_K", 256, 210};  // ql[128], qh[64], int8 scales[16], f16 d
  }
  return {"?", 1, 1};
}

constexpr QType kAllQTypes[] = {QType::kQ8_0, QType::kQ4_0, QType::kQ4_1, QType::kQ5_0,
                                QType::kQ5_1, QType::kQ2_K, QType::kQ3_K, QType::kQ4_K,
                                QType::kQ5_K, QType::kQ6_K};

// The type named `name` ("Q4_K"); false when it is not one of kAllQTypes.
inline bool parse_qtype(const std::string& name, QType* t) {
  for (QType q : kAllQTypes) {
    if (name == qtype_info(q).name) {
      *t = q;
      return true;
    }
  }
  return false;
}

// "Q8_0, Q4_0, ..., Q6_K": for error messages.
inline std::string supported_qtypes() {
  std::string s;
  for (QType q : kAllQTypes) s += std::string(s.empty() ? "" : ", ") + qtype_info(q).name;
  return s;
}

}  // namespace gemmacpp
