#include "csrc/io/ggml_types.h"

namespace gemmacpp {
namespace {

// Sizes from GGML's block layouts (e.g. Q4_K: f16 d and dmin, 12 bytes of 6-bit scales, 128 bytes
// of nibbles = 144 bytes per 256 values).
constexpr GGMLTypeInfo kTypes[] = {
    {GGMLType::F32, "F32", 1, 4, true},          {GGMLType::F16, "F16", 1, 2, true},
    {GGMLType::Q4_0, "Q4_0", 32, 18, true},      {GGMLType::Q4_1, "Q4_1", 32, 20, true},
    {GGMLType::Q5_0, "Q5_0", 32, 22, true},      {GGMLType::Q5_1, "Q5_1", 32, 24, true},
    {GGMLType::Q8_0, "Q8_0", 32, 34, true},      {GGMLType::Q8_1, "Q8_1", 32, 36, false},
    {GGMLType::Q2_K, "Q2_K", 256, 84, true},     {GGMLType::Q3_K, "Q3_K", 256, 110, true},
    {GGMLType::Q4_K, "Q4_K", 256, 144, true},    {GGMLType::Q5_K, "Q5_K", 256, 176, true},
    {GGMLType::Q6_K, "Q6_K", 256, 210, true},    {GGMLType::Q8_K, "Q8_K", 256, 292, true},
    {GGMLType::IQ2_XXS, "IQ2_XXS", 256, 66, false}, {GGMLType::IQ2_XS, "IQ2_XS", 256, 74, false},
    {GGMLType::IQ3_XXS, "IQ3_XXS", 256, 98, false}, {GGMLType::IQ1_S, "IQ1_S", 256, 50, false},
    {GGMLType::IQ4_NL, "IQ4_NL", 32, 18, false}, {GGMLType::IQ3_S, "IQ3_S", 256, 110, false},
    {GGMLType::IQ2_S, "IQ2_S", 256, 82, false},  {GGMLType::IQ4_XS, "IQ4_XS", 256, 136, false},
    {GGMLType::I8, "I8", 1, 1, true},            {GGMLType::I16, "I16", 1, 2, false},
    {GGMLType::I32, "I32", 1, 4, true},          {GGMLType::I64, "I64", 1, 8, true},
    {GGMLType::F64, "F64", 1, 8, true},          {GGMLType::IQ1_M, "IQ1_M", 256, 56, false},
    {GGMLType::BF16, "BF16", 1, 2, true},        {GGMLType::TQ1_0, "TQ1_0", 256, 54, false},
    {GGMLType::TQ2_0, "TQ2_0", 256, 66, false},  {GGMLType::MXFP4, "MXFP4", 32, 17, false},
};

}  // namespace

const GGMLTypeInfo* ggml_type_info(uint32_t id) {
  for (const auto& t : kTypes)
    if (uint32_t(t.type) == id) return &t;
  return nullptr;
}

const GGMLTypeInfo* ggml_type_info(const std::string& name) {
  for (const auto& t : kTypes)
    if (name == t.name) return &t;
  return nullptr;
}

std::optional<DType> ggml_plain_dtype(GGMLType t) {
  switch (t) {
    case GGMLType::F32: return DType::kF32;
    case GGMLType::F16: return DType::kF16;
    case GGMLType::BF16: return DType::kBF16;
    case GGMLType::F64: return DType::kF64;
    case GGMLType::I8: return DType::kI8;
    case GGMLType::I32: return DType::kI32;
    case GGMLType::I64: return DType::kI64;
    default: return std::nullopt;
  }
}

}  // namespace gemmacpp
