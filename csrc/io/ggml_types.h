// GGML tensor types as GGUF files number them: name, block size (values per block) and bytes per
// block. gemmacpp's kernels read F32/F16/BF16, Q4_0 ... Q8_0 and the K-quants; the other types are
// known (so a file that uses them is still described and its sizes checked) but unsupported.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "csrc/core/dtype.h"

namespace gemmacpp {

enum class GGMLType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

struct GGMLTypeInfo {
  GGMLType type;
  const char* name;
  int block_size;       // values per block (1 for plain element types)
  int bytes_per_block;  // bytes per block (the element size for plain types)
  bool supported;       // gemmacpp reads it (as an array or in its blocks)
};

// The traits of a type id, or nullptr for an id GGML does not define (or no longer defines).
const GGMLTypeInfo* ggml_type_info(uint32_t id);
// By name ("Q4_K"), or nullptr.
const GGMLTypeInfo* ggml_type_info(const std::string& name);

// The DType of a plain (unquantized) GGML type, or nullopt for block-quantized and I16.
std::optional<DType> ggml_plain_dtype(GGMLType t);

}  // namespace gemmacpp
