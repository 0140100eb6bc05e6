//===- HalfTest.cpp - fp16 / bf16 conversion tests ------------------------===//

#include "kvc/Numerics/Half.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

using namespace kvc::numerics;

namespace {
float fromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t toBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
bool isHalfNaN(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x3FF); }
} // namespace

TEST(Half, AllPatternsRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const float f = halfToFloat(bits);
    if (isHalfNaN(bits)) {
      ASSERT_TRUE(std::isnan(f)) << h;
      // NaNs keep sign and payload and come back quiet.
      ASSERT_EQ(floatToHalf(f), bits | 0x0200) << h;
    } else {
      ASSERT_EQ(floatToHalf(f), bits) << h;
    }
  }
}

TEST(Half, KnownValues) {
  EXPECT_EQ(floatToHalf(0.0f), 0x0000);
  EXPECT_EQ(floatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(floatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(floatToHalf(0.1f), 0x2E66);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -14)), 0x0400); // smallest normal
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -24)), 0x0001); // smallest subnormal
  EXPECT_EQ(halfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(halfToFloat(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(halfToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(halfToFloat(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::signbit(halfToFloat(0x8000)));
}

TEST(Half, RoundToNearestEven) {
  // Halfway between 1 and 1 + 2^-10 rounds to the even 1.
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  // Halfway between 1 + 2^-10 (odd) and 1 + 2^-9 rounds up to even.
  EXPECT_EQ(floatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  // Just above a tie rounds up.
  EXPECT_EQ(floatToHalf(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)),
            0x3C01);
  // Exhaustive: the midpoint between every pair of adjacent finite halves
  // rounds to the even one; one float ulp either side rounds to the nearer.
  for (uint16_t h = 0; h < 0x7BFF; ++h) {
    const float lo = halfToFloat(h), hi = halfToFloat(h + 1);
    const float mid = lo + (hi - lo) / 2; // exact: 12 significant bits
    const uint16_t even = (h & 1) ? h + 1 : h;
    ASSERT_EQ(floatToHalf(mid), even) << h;
    ASSERT_EQ(floatToHalf(-mid), even | 0x8000) << h;
    ASSERT_EQ(floatToHalf(std::nextafter(mid, 0.0f)), h) << h;
    ASSERT_EQ(floatToHalf(std::nextafter(mid, 1e9f)), h + 1) << h;
  }
}

TEST(Half, Subnormals) {
  const float unit = std::ldexp(1.0f, -24);
  EXPECT_EQ(floatToHalf(unit / 2), 0x0000); // tie to even (0)
  EXPECT_EQ(floatToHalf(std::nextafter(unit / 2, 1.0f)), 0x0001);
  EXPECT_EQ(floatToHalf(1.5f * unit), 0x0002); // tie to even (2)
  EXPECT_EQ(floatToHalf(2.5f * unit), 0x0002);
  EXPECT_EQ(floatToHalf(-3.0f * unit), 0x8003);
  // Halfway between the largest subnormal and the smallest normal.
  EXPECT_EQ(floatToHalf(1023.5f * unit), 0x0400);
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(floatToHalf(-std::numeric_limits<float>::denorm_min()), 0x8000);
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -30)), 0x0000);
}

TEST(Half, OverflowAndSpecials) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(floatToHalf(65519.0f), 0x7BFF);
  EXPECT_EQ(floatToHalf(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(floatToHalf(65520.0f), 0x7C00); // tie rounds to even = Inf
  EXPECT_EQ(floatToHalf(-65520.0f), 0xFC00);
  EXPECT_EQ(floatToHalf(1e10f), 0x7C00);
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::max()), 0x7C00);
  EXPECT_EQ(floatToHalf(inf), 0x7C00);
  EXPECT_EQ(floatToHalf(-inf), 0xFC00);
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::quiet_NaN()), 0x7E00);
  EXPECT_TRUE(isHalfNaN(floatToHalf(fromBits(0x7F800001)))); // low payload
  EXPECT_TRUE(isHalfNaN(floatToHalf(fromBits(0xFF800001))));
  EXPECT_TRUE(floatToHalf(fromBits(0xFFC00000)) & 0x8000);
  EXPECT_TRUE(std::isnan(halfToFloat(0x7E00)));
  EXPECT_TRUE(std::isnan(roundToHalf(std::nanf(""))));
}

#if defined(__FLT16_MAX__)
// An independent reference: the compiler's own _Float16 conversion (GCC
// implements it with correctly rounded software or F16C instructions).
TEST(Half, MatchesCompilerFloat16) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000000; ++i) {
    const float f = fromBits(rng());
    if (std::isnan(f))
      continue;
    const _Float16 h = static_cast<_Float16>(f);
    uint16_t bits;
    std::memcpy(&bits, &h, 2);
    ASSERT_EQ(floatToHalf(f), bits) << f;
  }
}
#endif

TEST(BFloat16, Conversions) {
  EXPECT_EQ(floatToBFloat16(1.0f), 0x3F80);
  EXPECT_EQ(floatToBFloat16(-2.0f), 0xC000);
  // Ties to even on the dropped 16 bits.
  EXPECT_EQ(floatToBFloat16(fromBits(0x3F808000)), 0x3F80);
  EXPECT_EQ(floatToBFloat16(fromBits(0x3F818000)), 0x3F82);
  EXPECT_EQ(floatToBFloat16(fromBits(0x3F808001)), 0x3F81);
  EXPECT_EQ(floatToBFloat16(fromBits(0x7F7FFFFF)), 0x7F80); // overflow -> Inf
  EXPECT_TRUE(std::isnan(bfloat16ToFloat(
      floatToBFloat16(fromBits(0x7F800001))))); // NaN stays NaN
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = bfloat16ToFloat(static_cast<uint16_t>(b));
    ASSERT_EQ(toBits(f), b << 16);
    if (!std::isnan(f)) {
      ASSERT_EQ(floatToBFloat16(f), b);
    }
  }
}

TEST(Half, SaturateToHalfRange) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(saturateToHalfRange(70000.0f), 65504.0f);
  EXPECT_EQ(saturateToHalfRange(-1e30f), -65504.0f);
  EXPECT_EQ(saturateToHalfRange(65504.0f), 65504.0f);
  EXPECT_EQ(saturateToHalfRange(1.25f), 1.25f);
  EXPECT_EQ(saturateToHalfRange(inf), inf);
  EXPECT_EQ(saturateToHalfRange(-inf), -inf);
  EXPECT_TRUE(std::isnan(saturateToHalfRange(std::nanf(""))));
  EXPECT_FALSE(std::signbit(saturateToHalfRange(-0.0f)));
}
