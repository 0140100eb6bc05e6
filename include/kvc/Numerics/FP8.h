//===- FP8.h - Software fp8 (E4M3FN / E5M2) conversions ---------*- C++ -*-===//
//
// The two OCP 8-bit float formats, converted in integer arithmetic:
//  - E4M3 is "E4M3FN": bias 7, no Inf, NaN = S.1111.111, max finite 448.
//  - E5M2 is IEEE-like: bias 15, Inf = S.11111.00, NaN = S.11111.{01,10,11},
//    max finite 57344.
// Encoding is round-to-nearest-even. With `saturate` (PTX's .satfinite, what
// the cache uses) every finite or infinite out-of-range value goes to +-max
// finite; without it overflow gives +-Inf (E5M2) or the canonical NaN 0x7F
// (E4M3, which has no Inf).
// NaN always encodes as the canonical 0x7F.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_NUMERICS_FP8_H
#define KVC_NUMERICS_FP8_H

#include <cstdint>

namespace kvc {
namespace numerics {

enum class FP8Format : uint8_t { E4M3, E5M2 };

/// Canonical fp8 NaN code (both formats).
constexpr uint8_t kFP8NaN = 0x7F;

/// Largest finite value: 448 (E4M3) or 57344 (E5M2).
float fp8MaxFinite(FP8Format format);

/// Name used in attributes and docs: "e4m3" / "e5m2".
const char *fp8FormatName(FP8Format format);

/// float -> fp8 code, RNE; see the file comment for saturation and NaN.
uint8_t floatToFP8(float x, FP8Format format, bool saturate = true);

/// fp8 code -> float (exact).
float fp8ToFloat(uint8_t code, FP8Format format);

} // namespace numerics
} // namespace kvc

#endif // KVC_NUMERICS_FP8_H
