//===- FP8.cpp - Software fp8 (E4M3FN / E5M2) conversions -----------------===//

#include "kvc/Numerics/FP8.h"

#include "MiniFloat.h"

#include <cmath>
#include <limits>

using namespace kvc::numerics::detail;

namespace kvc {
namespace numerics {

namespace {
struct FormatInfo {
  int mantBits;
  int bias;
  uint8_t maxFiniteCode; // magnitude code of the largest finite value
  uint8_t overflowCode;  // magnitude code of overflow without saturation
};

FormatInfo info(FP8Format format) {
  if (format == FP8Format::E4M3)
    return {3, 7, 0x7E, 0x7F}; // no Inf: overflow is NaN
  return {2, 15, 0x7B, 0x7C};  // overflow is Inf
}
} // namespace

float fp8MaxFinite(FP8Format format) {
  return format == FP8Format::E4M3 ? 448.0f : 57344.0f;
}

const char *fp8FormatName(FP8Format format) {
  return format == FP8Format::E4M3 ? "e4m3" : "e5m2";
}

uint8_t floatToFP8(float x, FP8Format format, bool saturate) {
  const FormatInfo fi = info(format);
  const uint32_t u = floatBits(x);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u)
    return kFP8NaN;
  uint32_t mag = abs == 0x7F800000u ? 0xFFFFFFFFu
                                    : roundMagnitude(abs, fi.mantBits, fi.bias);
  if (mag > fi.maxFiniteCode) {
    if (!saturate && format == FP8Format::E4M3)
      return kFP8NaN; // no Inf in E4M3FN: overflow is the canonical NaN
    mag = saturate ? fi.maxFiniteCode : fi.overflowCode;
  }
  return static_cast<uint8_t>(sign | mag);
}

float fp8ToFloat(uint8_t code, FP8Format format) {
  const bool negative = (code & 0x80u) != 0;
  const FormatInfo fi = info(format);
  const int expBits = 7 - fi.mantBits;
  const int exp = (code >> fi.mantBits) & ((1 << expBits) - 1);
  const int mant = code & ((1 << fi.mantBits) - 1);
  const int maxExp = (1 << expBits) - 1;
  float mag;
  if (format == FP8Format::E4M3 && exp == maxExp && mant == 7) {
    mag = std::numeric_limits<float>::quiet_NaN();
  } else if (format == FP8Format::E5M2 && exp == maxExp) {
    mag = mant == 0 ? std::numeric_limits<float>::infinity()
                    : std::numeric_limits<float>::quiet_NaN();
  } else if (exp == 0) {
    mag = std::ldexp(static_cast<float>(mant), 1 - fi.bias - fi.mantBits);
  } else {
    mag = std::ldexp(static_cast<float>((1 << fi.mantBits) + mant),
                     exp - fi.bias - fi.mantBits);
  }
  return negative ? -mag : mag;
}

} // namespace numerics
} // namespace kvc
