//===- FP8Test.cpp - fp8 E4M3FN / E5M2 conversion tests -------------------===//

#include "kvc/Numerics/FP8.h"

#include "gtest/gtest.h"

#include <cmath>
#include <limits>

using namespace kvc::numerics;

namespace {
const FP8Format kFormats[] = {FP8Format::E4M3, FP8Format::E5M2};

bool isNaNCode(uint8_t c, FP8Format f) {
  if (f == FP8Format::E4M3)
    return (c & 0x7F) == 0x7F;
  return (c & 0x7C) == 0x7C && (c & 0x03) != 0;
}
bool isInfCode(uint8_t c, FP8Format f) {
  return f == FP8Format::E5M2 && (c & 0x7F) == 0x7C;
}
uint8_t maxCodeOf(FP8Format f) { return f == FP8Format::E4M3 ? 0x7E : 0x7B; }
} // namespace

TEST(FP8, KnownValues) {
  EXPECT_EQ(fp8MaxFinite(FP8Format::E4M3), 448.0f);
  EXPECT_EQ(fp8MaxFinite(FP8Format::E5M2), 57344.0f);
  EXPECT_EQ(fp8ToFloat(0x7E, FP8Format::E4M3), 448.0f);
  EXPECT_EQ(fp8ToFloat(0x7B, FP8Format::E5M2), 57344.0f);
  EXPECT_EQ(fp8ToFloat(0x38, FP8Format::E4M3), 1.0f);
  EXPECT_EQ(fp8ToFloat(0x3C, FP8Format::E5M2), 1.0f);
  EXPECT_EQ(fp8ToFloat(0x01, FP8Format::E4M3), std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8ToFloat(0x01, FP8Format::E5M2), std::ldexp(1.0f, -16));
  EXPECT_EQ(fp8ToFloat(0x08, FP8Format::E4M3), std::ldexp(1.0f, -6));
  EXPECT_EQ(fp8ToFloat(0xBA, FP8Format::E4M3), -1.25f);
  EXPECT_TRUE(std::isnan(fp8ToFloat(0x7F, FP8Format::E4M3)));
  EXPECT_TRUE(std::isnan(fp8ToFloat(0xFF, FP8Format::E4M3)));
  EXPECT_TRUE(std::isinf(fp8ToFloat(0x7C, FP8Format::E5M2)));
  EXPECT_TRUE(std::isnan(fp8ToFloat(0x7D, FP8Format::E5M2)));
  EXPECT_EQ(fp8ToFloat(0xFC, FP8Format::E5M2),
            -std::numeric_limits<float>::infinity());
  EXPECT_EQ(floatToFP8(1.0f, FP8Format::E4M3), 0x38);
  EXPECT_EQ(floatToFP8(-1.25f, FP8Format::E4M3), 0xBA);
  EXPECT_EQ(floatToFP8(1.0f, FP8Format::E5M2), 0x3C);
}

TEST(FP8, AllCodesRoundTrip) {
  for (FP8Format f : kFormats)
    for (unsigned c = 0; c < 256; ++c) {
      const uint8_t code = static_cast<uint8_t>(c);
      const float v = fp8ToFloat(code, f);
      if (isNaNCode(code, f)) {
        ASSERT_TRUE(std::isnan(v));
        ASSERT_EQ(floatToFP8(v, f), kFP8NaN);
      } else if (isInfCode(code, f)) {
        ASSERT_EQ(floatToFP8(v, f, /*saturate=*/false), code);
        ASSERT_EQ(floatToFP8(v, f, /*saturate=*/true),
                  (code & 0x80) | maxCodeOf(f));
      } else {
        ASSERT_EQ(floatToFP8(v, f, true), code) << c;
        ASSERT_EQ(floatToFP8(v, f, false), code) << c;
      }
    }
}

TEST(FP8, RoundToNearestEvenTies) {
  for (FP8Format f : kFormats)
    for (uint8_t c = 0; c < maxCodeOf(f); ++c) {
      const float lo = fp8ToFloat(c, f), hi = fp8ToFloat(c + 1, f);
      const float mid = lo + (hi - lo) / 2;
      const uint8_t even = (c & 1) ? c + 1 : c;
      ASSERT_EQ(floatToFP8(mid, f), even) << int(c);
      ASSERT_EQ(floatToFP8(-mid, f), even | 0x80) << int(c);
      ASSERT_EQ(floatToFP8(std::nextafter(mid, 0.0f), f), c) << int(c);
      ASSERT_EQ(floatToFP8(std::nextafter(mid, 1e9f), f), c + 1) << int(c);
    }
  // Below half the smallest subnormal -> 0; exactly half ties to 0.
  EXPECT_EQ(floatToFP8(std::ldexp(1.0f, -10), FP8Format::E4M3), 0x00);
  EXPECT_EQ(floatToFP8(std::ldexp(1.5f, -10), FP8Format::E4M3), 0x01);
  EXPECT_EQ(floatToFP8(-std::ldexp(1.0f, -12), FP8Format::E4M3), 0x80);
  EXPECT_EQ(floatToFP8(std::numeric_limits<float>::denorm_min(),
                       FP8Format::E5M2),
            0x00);
}

TEST(FP8, Saturation) {
  const float inf = std::numeric_limits<float>::infinity();
  // E4M3: 464 is the tie between 448 (0x7E, even) and the missing 480.
  EXPECT_EQ(floatToFP8(464.0f, FP8Format::E4M3, false), 0x7E);
  EXPECT_EQ(floatToFP8(465.0f, FP8Format::E4M3, false), kFP8NaN);
  EXPECT_EQ(floatToFP8(465.0f, FP8Format::E4M3, true), 0x7E);
  EXPECT_EQ(floatToFP8(-1e6f, FP8Format::E4M3, true), 0xFE);
  EXPECT_EQ(floatToFP8(inf, FP8Format::E4M3, true), 0x7E);
  EXPECT_EQ(floatToFP8(-inf, FP8Format::E4M3, false), kFP8NaN);
  // E5M2: 61440 ties between 57344 (0x7B, odd) and 65536 (Inf, even).
  EXPECT_EQ(floatToFP8(61440.0f, FP8Format::E5M2, false), 0x7C);
  EXPECT_EQ(floatToFP8(61440.0f, FP8Format::E5M2, true), 0x7B);
  EXPECT_EQ(floatToFP8(61439.0f, FP8Format::E5M2, false), 0x7B);
  EXPECT_EQ(floatToFP8(-1e30f, FP8Format::E5M2, true), 0xFB);
  EXPECT_EQ(floatToFP8(-inf, FP8Format::E5M2, false), 0xFC);
  EXPECT_EQ(floatToFP8(-inf, FP8Format::E5M2, true), 0xFB);
}

TEST(FP8, NaN) {
  for (FP8Format f : kFormats) {
    EXPECT_EQ(floatToFP8(std::numeric_limits<float>::quiet_NaN(), f),
              kFP8NaN);
    EXPECT_EQ(floatToFP8(-std::numeric_limits<float>::quiet_NaN(), f, false),
              kFP8NaN);
    EXPECT_TRUE(std::isnan(fp8ToFloat(kFP8NaN, f)));
  }
}
