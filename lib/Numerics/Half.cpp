//===- Half.cpp - Software fp16 / bf16 conversions ------------------------===//

#include "kvc/Numerics/Half.h"

#include "MiniFloat.h"

using namespace kvc::numerics::detail;

namespace kvc {
namespace numerics {

uint16_t floatToHalf(float x) {
  const uint32_t u = floatBits(x);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) // NaN: quiet it, keep the top payload bits.
    return static_cast<uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));
  if (abs >= 0x47800000u) // >= 65536 (or Inf): Inf.
    return static_cast<uint16_t>(sign | 0x7C00u);
  uint32_t mag = roundMagnitude(abs, 10, 15);
  if (mag > 0x7C00u) // Rounding cannot pass Inf from < 65536, but be safe.
    mag = 0x7C00u;
  return static_cast<uint16_t>(sign | mag);
}

float halfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) // Inf / NaN (payload shifted into the float mantissa).
    return bitsToFloat(sign | 0x7F800000u | (mant << 13));
  if (exp != 0)
    return bitsToFloat(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0)
    return bitsToFloat(sign);
  // Subnormal: normalize into a float normal.
  uint32_t e = 113; // float biased exponent of 2^-14
  while (!(mant & 0x400u)) {
    mant <<= 1;
    --e;
  }
  return bitsToFloat(sign | (e << 23) | ((mant & 0x3FFu) << 13));
}

float roundToHalf(float x) { return halfToFloat(floatToHalf(x)); }

uint16_t floatToBFloat16(float x) {
  const uint32_t u = floatBits(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u)
    return static_cast<uint16_t>((u >> 16) | 0x0040u);
  // RNE on the low 16 bits; a carry correctly overflows to Inf.
  const uint32_t rounded = u + 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(rounded >> 16);
}

float bfloat16ToFloat(uint16_t b) {
  return bitsToFloat(static_cast<uint32_t>(b) << 16);
}

} // namespace numerics
} // namespace kvc
