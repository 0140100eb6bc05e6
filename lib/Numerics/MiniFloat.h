//===- MiniFloat.h - Shared float -> small-float rounding -------*- C++ -*-===//
//
// Internal: one round-to-nearest-even routine for every narrow format (fp16,
// fp8 E4M3/E5M2) so that they cannot disagree on ties or subnormals.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_NUMERICS_MINIFLOAT_H
#define KVC_LIB_NUMERICS_MINIFLOAT_H

#include <cstdint>
#include <cstring>

namespace kvc {
namespace numerics {
namespace detail {

inline uint32_t floatBits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

inline float bitsToFloat(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

/// Round the finite, non-negative float with bits `absBits` to a format with
/// `mantBits` stored mantissa bits and exponent bias `bias` (IEEE-style, with
/// subnormals). Returns exponent/mantissa bits without the sign; the result may
/// exceed the format's largest finite code (the caller handles overflow) and a
/// mantissa carry correctly increments the exponent.
inline uint32_t roundMagnitude(uint32_t absBits, int mantBits, int bias) {
  const int biasedExp = static_cast<int>(absBits >> 23);
  const uint32_t frac = absBits & 0x7FFFFFu;
  if (biasedExp == 0)
    return 0; // float subnormals (< 2^-126) are below half of any target ulp.
  const int exp = biasedExp - 127;
  const int minNormalExp = 1 - bias;
  uint32_t q, rem, halfway;
  if (exp >= minNormalExp) {
    const int shift = 23 - mantBits;
    q = (static_cast<uint32_t>(exp + bias) << mantBits) | (frac >> shift);
    rem = frac & ((1u << shift) - 1u);
    halfway = 1u << (shift - 1);
  } else {
    // Target subnormal: count units of 2^(minNormalExp - mantBits).
    const uint32_t mant = frac | 0x800000u;
    const int shift = 23 - mantBits + (minNormalExp - exp);
    if (shift > 24)
      return 0; // < 1/4 unit.
    q = mant >> shift;
    rem = mant & ((1u << shift) - 1u);
    halfway = 1u << (shift - 1);
  }
  if (rem > halfway || (rem == halfway && (q & 1u)))
    ++q;
  return q;
}

} // namespace detail
} // namespace numerics
} // namespace kvc

#endif // KVC_LIB_NUMERICS_MINIFLOAT_H
