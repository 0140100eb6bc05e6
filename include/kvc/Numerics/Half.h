//===- Half.h - Software fp16 / bf16 conversions ----------------*- C++ -*-===//
//
// Bit-exact, platform-independent conversions between float and the 16-bit
// formats used by the cache (fp16 for scales, zeros, residual tokens; bf16 for
// model inputs). Done in integer arithmetic so that the host, the CPU loops and
// the GPU (cvt.rn.f16.f32) agree bit for bit regardless of compiler flags.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_NUMERICS_HALF_H
#define KVC_NUMERICS_HALF_H

#include <cstdint>
#include <limits>

namespace kvc {
namespace numerics {

/// Largest finite fp16 value.
constexpr float kHalfMax = 65504.0f;
/// The canonical fp16 quiet NaN, also the "poisoned group" marker.
constexpr uint16_t kHalfQuietNaN = 0x7E00;

/// float -> fp16 bits, round-to-nearest-even. |x| >= 65520 overflows to
/// +-Inf, fp16 subnormals are produced exactly (no flush to zero), NaN keeps
/// its sign and top payload bits and is made quiet.
uint16_t floatToHalf(float x);

/// fp16 bits -> float (exact: every fp16 value is a float).
float halfToFloat(uint16_t h);

/// x rounded to the nearest fp16 value (as a float); overflow gives +-Inf.
float roundToHalf(float x);

/// float -> bf16 bits, round-to-nearest-even; NaN stays a quiet NaN.
uint16_t floatToBFloat16(float x);

/// bf16 bits -> float (exact).
float bfloat16ToFloat(uint16_t b);

/// Saturating fp16-range clamp applied before quantization: finite values are
/// clamped to [-65504, 65504] and -0 becomes +0 (so that min/max, and hence
/// the stored zero-point bits, do not depend on reduction order). NaN and
/// +-Inf pass through unchanged.
inline float saturateToHalfRange(float x) {
  if (x > kHalfMax && x <= std::numeric_limits<float>::max())
    return kHalfMax;
  if (x < -kHalfMax && x >= -std::numeric_limits<float>::max())
    return -kHalfMax;
  return x == 0.0f ? 0.0f : x;
}

} // namespace numerics
} // namespace kvc

#endif // KVC_NUMERICS_HALF_H
