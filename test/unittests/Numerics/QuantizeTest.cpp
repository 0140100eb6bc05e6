//===- QuantizeTest.cpp - Group quantizer and fp8 scaling tests -----------===//

#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Pack.h"
#include "kvc/Numerics/Quantize.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

using namespace kvc::numerics;

namespace {
const unsigned kBits[] = {2, 3, 4, 8};
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

/// Element index of member i of group gi, from the spec (independent of the
/// library's own iteration).
size_t elementIndex(const QuantSpec &s, size_t tokens, size_t channels,
                    size_t gi, size_t i) {
  if (s.axis == QuantAxis::Token) {
    const size_t perRow = channels / s.group;
    return (gi / perRow) * channels + (gi % perRow) * s.group + i;
  }
  const size_t tb = gi / channels, d = gi % channels;
  (void)tokens;
  return (tb * s.group + i) * channels + d;
}

/// Fills one group with values from one of several distributions.
void fillGroup(std::mt19937_64 &rng, std::vector<float> &g, int kind) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  switch (kind) {
  case 0: // standard normal
    for (float &v : g)
      v = normal(rng);
    break;
  case 1: { // uniform, random magnitude 1e-3 .. 1e3
    const float a = std::pow(10.0f, -3.0f + 6.0f * unit(rng));
    for (float &v : g)
      v = a * (2 * unit(rng) - 1);
    break;
  }
  case 2: // normal with a few large outliers
    for (float &v : g)
      v = normal(rng);
    for (int k = 0; k < 3; ++k)
      g[rng() % g.size()] = normal(rng) * (50 + 450 * unit(rng));
    break;
  case 3: { // tiny range around a large offset (fp16 zero rounding matters)
    const float c = 200 * unit(rng) - 100;
    for (float &v : g)
      v = c + 1e-3f * normal(rng);
    break;
  }
  case 4: // near the fp16 limits
    for (float &v : g)
      v = 60000 * (2 * unit(rng) - 1);
    break;
  case 5: // around fp16 subnormals
    for (float &v : g)
      v = 1e-5f * normal(rng);
    break;
  case 6: // beyond the fp16 range: saturated
    for (float &v : g)
      v = 1e5f * (2 * unit(rng) - 1);
    break;
  default: // small integers (exact grid points)
    for (float &v : g)
      v = static_cast<float>(rng() % 7) - 3.0f;
    break;
  }
}
} // namespace

// |x - deq(q(x))| <= scale_f/2 + |zero - zero_f| + (2^b-1)|scale - scale_f|
// + eps, with the exact scale/zero of the (saturated) group, over >= 10^6
// random groups, every bit width, both axes, two group sizes.
TEST(Quantize, ErrorBoundRandomGroups) {
  std::mt19937_64 rng(12345);
  size_t totalGroups = 0;
  for (unsigned bits : kBits)
    for (QuantAxis axis : {QuantAxis::Token, QuantAxis::Channel})
      for (unsigned group : {32u, 64u}) {
        const QuantSpec spec{bits, axis, group};
        const size_t numGroups = group == 32 ? 98304 : 32768;
        size_t tokens, channels;
        if (axis == QuantAxis::Token) {
          channels = 4 * group;
          tokens = numGroups / 4;
        } else {
          channels = 64;
          tokens = group * (numGroups / 64);
        }
        ASSERT_EQ(quantNumGroups(spec, tokens, channels), numGroups);
        std::vector<float> x(tokens * channels), g(group);
        for (size_t gi = 0; gi < numGroups; ++gi) {
          fillGroup(rng, g, static_cast<int>(gi % 8));
          for (size_t i = 0; i < group; ++i)
            x[elementIndex(spec, tokens, channels, gi, i)] = g[i];
        }
        const QuantizedMatrix q = quantizeMatrix(x.data(), tokens, channels,
                                                 spec);
        const std::vector<float> deq =
            dequantizeMatrix(q, tokens, channels, spec);
        const double top = maxCode(bits);
        for (size_t gi = 0; gi < numGroups; ++gi) {
          double lo = INFINITY, hi = -INFINITY;
          for (size_t i = 0; i < group; ++i) {
            const double v = saturateToHalfRange(
                x[elementIndex(spec, tokens, channels, gi, i)]);
            lo = std::min(lo, v);
            hi = std::max(hi, v);
          }
          const double scaleF = halfToFloat(q.scales[gi]);
          const double zeroF = halfToFloat(q.zeros[gi]);
          const double scale = (hi - lo) / top;
          const double bound = scaleF / 2 + std::fabs(lo - zeroF) +
                               top * std::fabs(scale - scaleF);
          for (size_t i = 0; i < group; ++i) {
            const size_t e = elementIndex(spec, tokens, channels, gi, i);
            const double v = saturateToHalfRange(x[e]);
            const double eps =
                std::ldexp(std::fabs(v) + std::fabs(zeroF) + top * scaleF,
                           -21);
            ASSERT_LE(std::fabs(v - deq[e]), bound + eps)
                << "bits " << bits << " axis " << quantAxisName(axis)
                << " group " << group << " gi " << gi << " x " << x[e];
          }
        }
        totalGroups += numGroups;
      }
  EXPECT_GE(totalGroups, 1000000u);
}

TEST(Quantize, MatrixMatchesGroupFunctions) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  for (QuantAxis axis : {QuantAxis::Token, QuantAxis::Channel}) {
    const QuantSpec spec{3, axis, 32};
    const size_t tokens = 64, channels = 64;
    std::vector<float> x(tokens * channels);
    for (float &v : x)
      v = normal(rng);
    const QuantizedMatrix q = quantizeMatrix(x.data(), tokens, channels, spec);
    for (size_t gi = 0; gi < quantNumGroups(spec, tokens, channels); ++gi) {
      std::vector<float> g(32);
      for (size_t i = 0; i < 32; ++i)
        g[i] = x[elementIndex(spec, tokens, channels, gi, i)];
      std::vector<uint8_t> codes(32), packed(packedBytes(3, 32));
      const GroupParams p = quantizeGroup(g.data(), 32, 1, 3, codes.data());
      EXPECT_EQ(p.scale, q.scales[gi]);
      EXPECT_EQ(p.zero, q.zeros[gi]);
      packCodes(codes.data(), 32, 3, packed.data());
      EXPECT_TRUE(std::equal(packed.begin(), packed.end(),
                             q.codes.begin() + gi * packed.size()));
    }
  }
}

TEST(Quantize, ConstantGroupsAreExact) {
  for (unsigned bits : kBits)
    for (float c : {0.0f, -3.5f, 1.0f / 3.0f, 65504.0f, -65504.0f,
                    std::ldexp(3.0f, -24), 1e6f}) {
      std::vector<float> g(64, c);
      std::vector<uint8_t> codes(64, 0xFF);
      const GroupParams p = quantizeGroup(g.data(), 64, 1, bits, codes.data());
      EXPECT_EQ(p.scale, 0u);
      EXPECT_EQ(p.zero, floatToHalf(saturateToHalfRange(c)));
      for (uint8_t code : codes) {
        EXPECT_EQ(code, 0);
        EXPECT_EQ(dequantizeValue(code, p),
                  roundToHalf(saturateToHalfRange(c)));
      }
    }
  // An fp16-representable constant comes back bit-exact.
  std::vector<float> g(32, -3.5f);
  const std::vector<float> deq = dequantizeMatrix(
      quantizeMatrix(g.data(), 1, 32, {2, QuantAxis::Token, 32}), 1, 32,
      {2, QuantAxis::Token, 32});
  EXPECT_EQ(deq, g);
}

TEST(Quantize, ScaleUnderflowGivesZeroCodes) {
  std::vector<float> g(32, 0.25f);
  g[5] = std::nextafter(0.25f, 1.0f); // range/3 = 2^-25/3 underflows fp16
  std::vector<uint8_t> codes(32);
  const GroupParams p = quantizeGroup(g.data(), 32, 1, 2, codes.data());
  EXPECT_EQ(p.scale, 0u);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), 0), 32);
  EXPECT_EQ(dequantizeValue(codes[5], p), 0.25f);
}

TEST(Quantize, PoisonedGroups) {
  for (float bad : {kNaN, kInf, -kInf})
    for (QuantAxis axis : {QuantAxis::Token, QuantAxis::Channel}) {
      const QuantSpec spec{4, axis, 32};
      const size_t tokens = 64, channels = 64;
      std::vector<float> x(tokens * channels);
      for (size_t i = 0; i < x.size(); ++i)
        x[i] = std::sin(0.1f * static_cast<float>(i));
      const size_t poisonedGroup = 3;
      x[elementIndex(spec, tokens, channels, poisonedGroup, 17)] = bad;
      const QuantizedMatrix q =
          quantizeMatrix(x.data(), tokens, channels, spec);
      const std::vector<float> deq =
          dequantizeMatrix(q, tokens, channels, spec);
      EXPECT_EQ(q.scales[poisonedGroup], kHalfQuietNaN);
      EXPECT_EQ(q.zeros[poisonedGroup], kHalfQuietNaN);
      EXPECT_TRUE((GroupParams{q.scales[poisonedGroup], 0}).isPoisoned());
      const size_t gb = packedBytes(4, 32);
      for (size_t b = 0; b < gb; ++b)
        EXPECT_EQ(q.codes[poisonedGroup * gb + b], 0);
      for (size_t gi = 0; gi < quantNumGroups(spec, tokens, channels); ++gi)
        for (size_t i = 0; i < 32; ++i) {
          const float v = deq[elementIndex(spec, tokens, channels, gi, i)];
          if (gi == poisonedGroup)
            EXPECT_TRUE(std::isnan(v));
          else
            EXPECT_TRUE(std::isfinite(v));
        }
    }
}

TEST(Quantize, SaturatesBeyondHalfRange) {
  std::vector<float> g(32, 0.0f);
  g[0] = 1e6f;
  g[1] = -70000.0f;
  std::vector<uint8_t> codes(32);
  const GroupParams p = quantizeGroup(g.data(), 32, 1, 8, codes.data());
  EXPECT_EQ(p.zero, floatToHalf(-65504.0f));
  EXPECT_EQ(p.scale, floatToHalf(131008.0f / 255.0f));
  EXPECT_EQ(codes[0], 255);
  EXPECT_EQ(codes[1], 0);
  EXPECT_EQ(dequantizeValue(codes[1], p), -65504.0f);
  EXPECT_NEAR(dequantizeValue(codes[0], p), 65504.0f, 64.0f);
  EXPECT_TRUE(std::isfinite(dequantizeValue(codes[0], p)));
}

TEST(Quantize, RoundHalfToEvenCodes) {
  // min 0, max 3 -> scale 1, zero 0 at 2 bits: (x - 0) / 1 is exact.
  std::vector<float> g = {0.0f, 3.0f, 0.5f, 1.5f, 2.5f, 1.49f, 2.51f, 1.0f};
  g.resize(32, 0.0f);
  std::vector<uint8_t> codes(32);
  const GroupParams p = quantizeGroup(g.data(), 32, 1, 2, codes.data());
  EXPECT_EQ(p.scale, floatToHalf(1.0f));
  EXPECT_EQ(p.zero, 0u);
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[1], 3);
  EXPECT_EQ(codes[2], 0); // 0.5 -> 0
  EXPECT_EQ(codes[3], 2); // 1.5 -> 2
  EXPECT_EQ(codes[4], 2); // 2.5 -> 2
  EXPECT_EQ(codes[5], 1);
  EXPECT_EQ(codes[6], 3);
  EXPECT_EQ(codes[7], 1);
}

TEST(Quantize, NegativeZeroIsCanonical) {
  std::vector<float> a(32, 1.0f), b(32, 1.0f);
  a[0] = -0.0f;
  a[1] = 0.0f;
  b[0] = 0.0f;
  b[1] = -0.0f;
  std::vector<uint8_t> codes(32);
  EXPECT_EQ(quantizeGroup(a.data(), 32, 1, 2, codes.data()).zero, 0x0000);
  EXPECT_EQ(quantizeGroup(b.data(), 32, 1, 2, codes.data()).zero, 0x0000);
}

TEST(Quantize, ShapesAndValidation) {
  const QuantSpec tok{2, QuantAxis::Token, 32}, ch{3, QuantAxis::Channel, 64};
  EXPECT_EQ(quantCodesShape(tok, 5, 128), (std::vector<int64_t>{5, 32}));
  EXPECT_EQ(quantParamsShape(tok, 5, 128), (std::vector<int64_t>{5, 4}));
  EXPECT_EQ(quantCodesShape(ch, 128, 7), (std::vector<int64_t>{2, 7, 24}));
  EXPECT_EQ(quantParamsShape(ch, 128, 7), (std::vector<int64_t>{2, 7}));
  EXPECT_EQ(quantCodesBytes(ch, 128, 7), 2u * 7 * 24);
  EXPECT_EQ(quantNumGroups(ch, 128, 7), 14u);
  EXPECT_EQ(validateQuantShape(tok, 5, 128), "");
  EXPECT_EQ(validateQuantShape(ch, 128, 7), "");
  EXPECT_NE(validateQuantShape(tok, 5, 48).find("must divide"),
            std::string::npos);
  EXPECT_NE(validateQuantShape(ch, 96, 7).find("must divide"),
            std::string::npos);
  EXPECT_NE(validateQuantSpec({5, QuantAxis::Token, 32}).find("bits"),
            std::string::npos);
  EXPECT_NE(validateQuantSpec({2, QuantAxis::Token, 48}).find("multiple of 32"),
            std::string::npos);
  EXPECT_NE(validateQuantSpec({2, QuantAxis::Token, 0}), "");
}

// fp8: |x - deq| <= |x| 2^-(m+1) + scale_f * (smallest subnormal / 2)
// + the clamp at fmax caused by rounding the scale down.
TEST(QuantizeFP8, ErrorBoundAndScale) {
  std::mt19937_64 rng(99);
  for (FP8Format f : {FP8Format::E4M3, FP8Format::E5M2}) {
    const double relHalfUlp = f == FP8Format::E4M3 ? 1.0 / 16 : 1.0 / 8;
    const double halfMinSub =
        f == FP8Format::E4M3 ? std::ldexp(1.0, -10) : std::ldexp(1.0, -17);
    const size_t tokens = 4096, channels = 64;
    std::vector<float> x(tokens * channels), g(channels);
    for (size_t t = 0; t < tokens; ++t) {
      fillGroup(rng, g, static_cast<int>(t % 8));
      std::copy(g.begin(), g.end(), x.begin() + t * channels);
    }
    std::vector<uint8_t> codes(x.size());
    std::vector<uint16_t> scales(tokens);
    std::vector<float> deq(x.size());
    quantizeFP8Matrix(x.data(), tokens, channels, f, codes.data(),
                      scales.data());
    dequantizeFP8Matrix(codes.data(), scales.data(), tokens, channels, f,
                        deq.data());
    for (size_t t = 0; t < tokens; ++t) {
      double amax = 0;
      for (size_t c = 0; c < channels; ++c)
        amax = std::max<double>(
            amax, std::fabs(saturateToHalfRange(x[t * channels + c])));
      const uint16_t expect = floatToHalf(
          static_cast<float>(amax) / fp8MaxFinite(f));
      ASSERT_EQ(scales[t], expect == 0 ? 1 : expect);
      const double s = halfToFloat(scales[t]);
      const double clampErr = std::max(0.0, amax - fp8MaxFinite(f) * s);
      for (size_t c = 0; c < channels; ++c) {
        const double v = saturateToHalfRange(x[t * channels + c]);
        const double err = std::fabs(v - deq[t * channels + c]);
        ASSERT_LE(err, std::fabs(v) * relHalfUlp + s * halfMinSub + clampErr +
                           1e-30)
            << fp8FormatName(f) << " t " << t << " x " << v;
      }
    }
  }
}

TEST(QuantizeFP8, SpecialTokens) {
  const size_t d = 32;
  std::vector<float> x(4 * d, 0.0f);
  for (size_t c = 0; c < d; ++c) {
    x[1 * d + c] = 1e-7f * static_cast<float>(c + 1); // amax/448 underflows fp16
    x[2 * d + c] = c == 3 ? kNaN : 1.0f;
    x[3 * d + c] = c == 0 ? 1e6f : 0.5f; // saturated to 65504
  }
  x[2 * d + 7] = 5.0f;
  std::vector<uint8_t> codes(x.size());
  std::vector<uint16_t> scales(4);
  std::vector<float> deq(x.size());
  quantizeFP8Matrix(x.data(), 4, d, FP8Format::E4M3, codes.data(),
                    scales.data());
  dequantizeFP8Matrix(codes.data(), scales.data(), 4, d, FP8Format::E4M3,
                      deq.data());
  // All-zero token: smallest subnormal scale, exact zeros.
  EXPECT_EQ(scales[0], 0x0001);
  for (size_t c = 0; c < d; ++c)
    EXPECT_EQ(deq[c], 0.0f);
  // Tiny token keeps a nonzero scale and its values.
  EXPECT_EQ(scales[1], 0x0001);
  EXPECT_NEAR(deq[1 * d + 31], 3.2e-6, 3.2e-6 / 8);
  // NaN token: NaN scale, NaN codes, NaN everywhere.
  EXPECT_EQ(scales[2], kHalfQuietNaN);
  for (size_t c = 0; c < d; ++c) {
    EXPECT_EQ(codes[2 * d + c], kFP8NaN);
    EXPECT_TRUE(std::isnan(deq[2 * d + c]));
  }
  // Saturated token: amax 65504.
  EXPECT_EQ(scales[3], floatToHalf(65504.0f / 448.0f));
  EXPECT_EQ(codes[3 * d], 0x7E);
  EXPECT_NEAR(deq[3 * d], 65504.0f, 65504.0f / 16);
  // Inf poisons like NaN.
  std::vector<float> inf(d, 1.0f);
  inf[9] = -kInf;
  EXPECT_EQ(computeFP8TokenScale(inf.data(), d, FP8Format::E5M2),
            kHalfQuietNaN);
}
