//===- FoldedScalesTest.cpp - The tensor-core key pass's folded scales ------===//

#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/FoldedScales.h"
#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Quantize.h"
#include "kvc/Numerics/ReferenceAttention.h"

#include "gtest/gtest.h"

#include <cmath>
#include <random>

using namespace kvc::numerics;

namespace {
constexpr size_t kTokens = 160, kDim = 16;
constexpr unsigned kResidual = 64;

/// fp16-representable keys with an outlier channel.
std::vector<float> randomKeys(unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(kTokens * kDim);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = roundToHalf(normal(rng) * (i % kDim == 3 ? 12.0f : 1.0f) +
                       (i % kDim == 3 ? 6.0f : 0.0f));
  return x;
}

/// A cache side of channel-axis `bits`-bit keys: its terms and its
/// dequantized view.
struct SimulatedSide {
  CompressedTerms terms;
  std::vector<float> keys;
};
SimulatedSide simulateSide(unsigned bits, unsigned seed) {
  const SideEncoding side =
      SideEncoding::quantized(bits, QuantAxis::Channel, 32);
  const std::vector<float> x = randomKeys(seed);
  return {simulateCompressedTerms(x.data(), kTokens, kDim, side, kResidual),
          simulateCacheSide(x.data(), kTokens, kDim, side, kResidual)};
}

TEST(FoldedScalesTest, FoldsChannelAxisCodesOnly) {
  EXPECT_TRUE(foldsKeyScales(SideEncoding::quantized(2, QuantAxis::Channel, 32)));
  EXPECT_TRUE(foldsKeyScales(SideEncoding::quantized(8, QuantAxis::Channel, 64)));
  EXPECT_FALSE(
      foldsKeyScales(SideEncoding::quantized(3, QuantAxis::Channel, 32)));
  EXPECT_FALSE(foldsKeyScales(SideEncoding::quantized(2, QuantAxis::Token, 32)));
  EXPECT_FALSE(foldsKeyScales(SideEncoding::plain()));
  EXPECT_FALSE(foldsKeyScales(SideEncoding::fp8Format(FP8Format::E4M3)));
}

TEST(FoldedScalesTest, FoldsWholeHeadTokenGroupsOfValues) {
  EXPECT_TRUE(
      foldsValueScales(SideEncoding::quantized(2, QuantAxis::Token, 128), 128));
  EXPECT_TRUE(
      foldsValueScales(SideEncoding::quantized(8, QuantAxis::Token, 64), 64));
  EXPECT_FALSE(
      foldsValueScales(SideEncoding::quantized(2, QuantAxis::Token, 64), 128));
  EXPECT_FALSE(
      foldsValueScales(SideEncoding::quantized(3, QuantAxis::Token, 128), 128));
  EXPECT_FALSE(foldsValueScales(
      SideEncoding::quantized(2, QuantAxis::Channel, 128), 128));
  EXPECT_FALSE(foldsValueScales(SideEncoding::plain(), 128));
}

TEST(FoldedScalesTest, TermsDequantizeToTheSimulatedCache) {
  for (unsigned bits : {2u, 4u, 8u}) {
    const SideEncoding side =
        SideEncoding::quantized(bits, QuantAxis::Channel, 32);
    const std::vector<float> x = randomKeys(bits);
    const CompressedTerms terms =
        simulateCompressedTerms(x.data(), kTokens, kDim, side, kResidual);
    ASSERT_EQ(terms.tokens, compressedTokenCount(kTokens, kResidual));
    ASSERT_EQ(terms.codes.size(), terms.tokens * kDim);
    const std::vector<float> view =
        simulateCacheSide(x.data(), kTokens, kDim, side, kResidual);
    for (size_t i = 0; i < terms.tokens * kDim; ++i) {
      EXPECT_LT(terms.codes[i], 1u << bits);
      EXPECT_EQ(dequantizeValue(terms.codes[i],
                                GroupParams{terms.scales[i], terms.zeros[i]}),
                view[i])
          << "bits " << bits << " element " << i;
    }
    // A group's tokens share their channel's parameters.
    EXPECT_EQ(terms.scales[3], terms.scales[31 * kDim + 3]);
  }
}

// With queries whose products with the scales are exact (q = 16: q / 16 = 1),
// the folded keys are code * scale + zero without its f32 roundings.
TEST(FoldedScalesTest, ExactProductsGiveTheDequantizedKeys) {
  const SimulatedSide side = simulateSide(2, 7);
  const CompressedTerms &terms = side.terms;
  std::vector<float> keys = side.keys;
  const std::vector<float> &view = side.keys;
  std::vector<float> q(kDim, 16.0f);
  foldKeyRows(q.data(), terms, kDim, keys.data());
  for (size_t i = 0; i < terms.tokens * kDim; ++i) {
    const double exact = double(halfToFloat(terms.scales[i])) * terms.codes[i] +
                         halfToFloat(terms.zeros[i]);
    EXPECT_EQ(keys[i], float(exact)) << i;
    // The view's two f32 roundings.
    const double size = double(halfToFloat(terms.scales[i])) * terms.codes[i] +
                        std::fabs(halfToFloat(terms.zeros[i]));
    EXPECT_NEAR(keys[i], view[i], 1e-6 * size) << i;
  }
  // The residual's rows are the pass's fp16 rows, untouched.
  for (size_t i = terms.tokens * kDim; i < keys.size(); ++i)
    EXPECT_EQ(keys[i], view[i]);
}

// Dot products over the folded keys are the kernel's sums of its fp16
// products, written out here: with s = foldedKeyQueryScale, fp16(fp16(q * s)
// * scale) * code and fp16(q * s) * zero, divided by s.
TEST(FoldedScalesTest, DotProductsAreTheFoldedSums) {
  for (unsigned bits : {2u, 4u, 8u}) {
    const SimulatedSide side = simulateSide(bits, 11);
    const CompressedTerms &terms = side.terms;
    ASSERT_EQ(terms.queryScale, std::ldexp(1.0, int(bits) - 4));
    const float s = static_cast<float>(terms.queryScale);
    std::vector<float> keys = side.keys;
    const std::vector<float> &view = side.keys;
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> q(kDim);
    for (float &value : q)
      value = normal(rng);
    q[5] = 0.0f; // a zero query channel keeps the view's key
    foldKeyRows(q.data(), terms, kDim, keys.data());
    double largestGap = 0;
    for (size_t t = 0; t < terms.tokens; ++t) {
      double folded = 0, viaKeys = 0, dequantized = 0;
      for (size_t c = 0; c < kDim; ++c) {
        const size_t i = t * kDim + c;
        const float qs = roundToHalf(q[c] * s);
        const float scaled = roundToHalf(qs * halfToFloat(terms.scales[i]));
        folded += (double(scaled) * terms.codes[i] +
                   double(qs) * halfToFloat(terms.zeros[i])) /
                  s;
        viaKeys += double(roundToHalf(q[c])) * keys[i];
        dequantized += double(roundToHalf(q[c])) * view[i];
      }
      EXPECT_NEAR(viaKeys, folded, 1e-6 * (std::fabs(folded) + 1))
          << "bits " << bits << " token " << t;
      largestGap = std::max(largestGap, std::fabs(folded - dequantized));
    }
    EXPECT_EQ(keys[5], view[5]);
    // The folding rounds products, not keys: the sums differ from the
    // dequantized keys' (by fp16 roundings of the products).
    EXPECT_GT(largestGap, 0.0) << bits;
    EXPECT_LT(largestGap, 0.05) << bits;
  }
}

// The queries' power of two keeps the folded products fp16 normals down to
// |q| * range of about 2^-10 at every width: with 8-bit scales (range /
// 255) and the 1/16 that every width carried before they were subnormals
// below |q| * range of 0.25, where tensor cores that flush subnormal inputs
// would drop them.
TEST(FoldedScalesTest, FoldedProductsOfSmallQueriesStayNormal) {
  const float smallestNormal = std::ldexp(1.0f, -14);
  for (unsigned bits : {2u, 4u, 8u}) {
    const SideEncoding side =
        SideEncoding::quantized(bits, QuantAxis::Channel, 32);
    const double queryScale = foldedKeyQueryScale(side);
    const float range = 1.0f, scale = roundToHalf(range / ((1u << bits) - 1));
    for (float q : {0.002f, 0.05f, 1.0f}) {
      const float qs = roundToHalf(q * static_cast<float>(queryScale));
      EXPECT_GE(roundToHalf(qs * scale), smallestNormal)
          << "bits " << bits << " q " << q;
    }
    if (bits == 8) {
      const float oldScaled = roundToHalf(roundToHalf(0.05f / 16) * scale);
      EXPECT_LT(oldScaled, smallestNormal);
    }
  }
  // The 8-bit fragment is finite for |q| < 4096.
  const SideEncoding eightBit =
      SideEncoding::quantized(8, QuantAxis::Channel, 32);
  EXPECT_TRUE(std::isfinite(
      roundToHalf(4000.0f * float(foldedKeyQueryScale(eightBit)))));
}

// GQA 2 over two KV heads, the first folded: its query heads see their own
// folded keys, the second's the keys as they are; queries rounded to fp16.
TEST(FoldedScalesTest, AttentionFoldsOnlyTheHeadsWithTerms) {
  const SimulatedSide first = simulateSide(2, 3), second = simulateSide(4, 4);
  std::vector<float> keys(first.keys);
  keys.insert(keys.end(), second.keys.begin(), second.keys.end());
  const std::vector<float> values = randomKeys(9);
  std::vector<float> allValues(values);
  allValues.insert(allValues.end(), values.begin(), values.end());
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(4 * kDim), rounded(4 * kDim);
  for (size_t i = 0; i < q.size(); ++i) {
    q[i] = normal(rng);
    rounded[i] = roundToHalf(q[i]);
  }
  AttentionOptions options;
  const std::vector<double> got = foldedKeyAttention(
      q.data(), 4, keys.data(), allValues.data(), 2, kTokens, kDim,
      {&first.terms, nullptr}, options);
  ASSERT_EQ(got.size(), 4 * kDim);
  for (size_t j = 0; j < 4; ++j) {
    std::vector<float> seen(j < 2 ? first.keys : second.keys);
    if (j < 2)
      foldKeyRows(q.data() + j * kDim, first.terms, kDim, seen.data());
    const std::vector<double> want =
        referenceAttention(rounded.data() + j * kDim, 1, 1, seen.data(),
                           values.data(), 1, kTokens, kDim, options);
    for (size_t c = 0; c < kDim; ++c)
      EXPECT_EQ(got[j * kDim + c], want[c]) << j << " " << c;
  }
}

// A per-head mask: query head j's row goes with its own folded keys.
TEST(FoldedScalesTest, AttentionTakesEachQueryHeadsMaskRow) {
  const SimulatedSide first = simulateSide(2, 5);
  const std::vector<float> values = randomKeys(10);
  std::mt19937 rng(6);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(2 * kDim), rounded(2 * kDim), mask(2 * kTokens);
  for (size_t i = 0; i < q.size(); ++i) {
    q[i] = normal(rng);
    rounded[i] = roundToHalf(q[i]);
  }
  for (float &bias : mask)
    bias = normal(rng);
  mask[kTokens + 1] = -INFINITY;
  AttentionOptions options;
  options.mask = mask.data();
  options.maskPerHead = true;
  const std::vector<double> got =
      foldedKeyAttention(q.data(), 2, first.keys.data(), values.data(), 1,
                         kTokens, kDim, {&first.terms}, options);
  for (size_t j = 0; j < 2; ++j) {
    std::vector<float> seen(first.keys);
    foldKeyRows(q.data() + j * kDim, first.terms, kDim, seen.data());
    AttentionOptions row;
    row.mask = mask.data() + j * kTokens;
    const std::vector<double> want =
        referenceAttention(rounded.data() + j * kDim, 1, 1, seen.data(),
                           values.data(), 1, kTokens, kDim, row);
    for (size_t c = 0; c < kDim; ++c)
      EXPECT_EQ(got[j * kDim + c], want[c]) << j << " " << c;
  }
}

TEST(FoldedScalesDeathTest, OtherEncodingsAreRejected) {
  EXPECT_DEATH(
      foldedKeyQueryScale(SideEncoding::quantized(2, QuantAxis::Token, 32)),
      "channel-axis 2/4/8-bit");
  const std::vector<float> x = randomKeys(1);
  EXPECT_DEATH(simulateCompressedTerms(
                   x.data(), kTokens, kDim,
                   SideEncoding::quantized(3, QuantAxis::Channel, 32),
                   kResidual),
               "channel-axis 2/4/8-bit");
}
} // namespace
