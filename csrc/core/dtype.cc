#include "csrc/core/dtype.h"

namespace gemmacpp {

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return f32_from_bits(sign);
    // Subnormal half: renormalise into a float32 normal.
    int e = -1;
    do { ++e; mant <<= 1; } while ((mant & 0x400u) == 0);
    return f32_from_bits(sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13);
  }
  if (exp == 31) return f32_from_bits(sign | 0x7f800000u | mant << 13);
  return f32_from_bits(sign | (exp + 127 - 15) << 23 | mant << 13);
}

uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;               // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;              // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                                    // below the smallest normal half
    if (abs < 0x33000000u) return sign;                       // below half the smallest subnormal
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;                           // 14 + (113 - e) - 1 .. in [14, 24]
    const uint32_t half = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    return sign | uint16_t(half + (rem > mid || (rem == mid && (half & 1))));
  }
  uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u);             // round mantissa to 10 bits
  return sign | uint16_t(((r >> 13) - ((127 - 15) << 10)) & 0xffffu);
}

}  // namespace gemmacpp
