// Element types that cross the Python boundary, and exact scalar conversions between them.
#pragma once

#include <cstdint>
#include <cstring>

namespace gemmacpp {

enum class DType : uint8_t { kF32, kF16, kBF16, kF64, kI8, kI32, kI64, kU8, kBool };

inline int dtype_size(DType t) {
  switch (t) {
    case DType::kF32: case DType::kI32: return 4;
    case DType::kF16: case DType::kBF16: return 2;
    case DType::kF64: case DType::kI64: return 8;
    case DType::kI8: case DType::kU8: case DType::kBool: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
    case DType::kF64: return "float64";
    case DType::kI8: return "int8";
    case DType::kI32: return "int32";
    case DType::kI64: return "int64";
    case DType::kU8: return "uint8";
    case DType::kBool: return "bool";
  }
  return "?";
}

inline bool is_float_activation(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16;
}

inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float f32_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }

// Round to nearest, ties to even; NaN stays a (quiet) NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even, overflow to inf

// Element i of an array of float32, float16 or bfloat16 (dt) as float32. p may be unaligned:
// tensors in a file mapping are placed where the file puts them.
inline float load_f32(DType dt, const void* p, int64_t i) {
  const auto* b = static_cast<const uint8_t*>(p);
  if (dt == DType::kF32) {
    float f;
    std::memcpy(&f, b + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, b + 2 * i, 2);
  return dt == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

// x rounded to the nearest value of dt (float16 or bfloat16; other dtypes keep x): what a float
// factor becomes when PyTorch multiplies a tensor of that dtype by it.
inline float round_to(DType dt, float x) {
  if (dt == DType::kBF16) return bf16_to_f32(f32_to_bf16(x));
  if (dt == DType::kF16) return f16_to_f32(f32_to_f16(x));
  return x;
}

}  // namespace gemmacpp
