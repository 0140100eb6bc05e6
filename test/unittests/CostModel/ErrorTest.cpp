//===- ErrorTest.cpp - Candidate errors vs a direct fp64 computation ------===//
//
// The cost model's fast fp32 difference computation against the numerics
// library's fp64 teacher-forced attention (and, for pruning, against
// reference attention over explicitly built cache views).
//
//===----------------------------------------------------------------------===//

#include "kvc/CostModel/AttentionError.h"

#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Prune.h"
#include "kvc/Numerics/ReferenceAttention.h"

#include "gtest/gtest.h"

#include <cmath>
#include <random>

using namespace kvc;
using namespace kvc::cost;
using numerics::QuantAxis;
using numerics::SideEncoding;

namespace {
/// Random Q/K/V with key outlier channels and a position-dependent drift,
/// so that quantization errors and attention are not trivial.
LayerStats makeLayer(size_t hq, size_t hkv, size_t n, size_t d,
                     unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  LayerStats l;
  l.numQueryHeads = hq;
  l.numKVHeads = hkv;
  l.numTokens = n;
  l.headDim = d;
  for (size_t i = 0; i < hq * n * d; ++i)
    l.queries.push_back(2.0f * normal(rng));
  for (size_t h = 0; h < hkv; ++h)
    for (size_t j = 0; j < n; ++j)
      for (size_t c = 0; c < d; ++c) {
        const float outlier = c % 7 == 0 ? 6.0f : 1.0f;
        l.keys.push_back(outlier * normal(rng) + 0.01f * float(j % 50));
        l.values.push_back(normal(rng));
      }
  return l;
}

/// sum ||o_c - o||^2 and sum ||o||^2 per KV head, in fp64, with the
/// encoding applied to one side only.
std::pair<std::vector<double>, std::vector<double>>
directErrors(const LayerStats &l, Side side, const SideEncoding &enc,
             unsigned residual, size_t scoreFrom) {
  numerics::CacheEncoding fp16{SideEncoding::plain(), SideEncoding::plain(),
                               residual};
  numerics::CacheEncoding c = fp16;
  (side == Side::Key ? c.key : c.value) = enc;
  numerics::AttentionOptions opts;
  const std::vector<double> ref = numerics::teacherForcedAttention(
      l.queries.data(), l.keys.data(), l.values.data(), l.numQueryHeads,
      l.numKVHeads, l.numTokens, l.headDim, fp16, opts, scoreFrom);
  const std::vector<double> out = numerics::teacherForcedAttention(
      l.queries.data(), l.keys.data(), l.values.data(), l.numQueryHeads,
      l.numKVHeads, l.numTokens, l.headDim, c, opts, scoreFrom);
  const size_t group = l.numQueryHeads / l.numKVHeads;
  const size_t perHead = (l.numTokens - scoreFrom) * l.headDim;
  std::vector<double> num(l.numKVHeads, 0.0), den(l.numKVHeads, 0.0);
  for (size_t h = 0; h < l.numQueryHeads; ++h)
    for (size_t i = h * perHead; i < (h + 1) * perHead; ++i) {
      num[h / group] += (out[i] - ref[i]) * (out[i] - ref[i]);
      den[h / group] += ref[i] * ref[i];
    }
  return {num, den};
}
} // namespace

TEST(AttentionError, MatchesTeacherForcedAttention) {
  const LayerStats layer = makeLayer(/*hq=*/6, /*hkv=*/2, /*n=*/320,
                                     /*d=*/64, 17);
  ErrorOptions options;
  options.residual = 64;
  options.scoreFrom = 100;
  const std::vector<Candidate> candidates = {
      Candidate{},
      {SideEncoding::quantized(2, QuantAxis::Channel, 32), 0},
      {SideEncoding::quantized(3, QuantAxis::Token, 64), 0},
      {SideEncoding::quantized(4, QuantAxis::Channel, 64), 0},
      {SideEncoding::quantized(8, QuantAxis::Token, 32), 0},
      {SideEncoding::fp8Format(numerics::FP8Format::E4M3), 0},
      {SideEncoding::fp8Format(numerics::FP8Format::E5M2), 0},
  };
  for (Side side : {Side::Key, Side::Value}) {
    std::vector<CandidateError> errors =
        candidateErrors(layer, side, candidates, options);
    ASSERT_EQ(errors.size(), candidates.size());
    for (size_t c = 0; c < candidates.size(); ++c) {
      auto [num, den] = directErrors(layer, side, candidates[c].element,
                                     options.residual, options.scoreFrom);
      for (size_t h = 0; h < layer.numKVHeads; ++h) {
        SCOPED_TRACE(std::string(sideName(side)) + " " +
                     candidates[c].toString() + " head " + std::to_string(h));
        EXPECT_NEAR(errors[c].denominator[h], den[h], 1e-5 * den[h]);
        if (c == 0) {
          EXPECT_EQ(errors[c].numerator[h], 0.0);
          continue;
        }
        EXPECT_GT(num[h], 0.0);
        // fp32 differences: ~1e-4 relative even for 8-bit errors.
        EXPECT_NEAR(errors[c].numerator[h], num[h], 2e-3 * num[h]);
      }
    }
  }
}

// R = 0 (everything compressed at once) and a query group of 1 (MHA).
TEST(AttentionError, NoResidualWindowAndNoGQA) {
  const LayerStats layer = makeLayer(2, 2, 200, 32, 5);
  ErrorOptions options;
  options.residual = 0;
  options.scoreFrom = 0;
  const Candidate q4{SideEncoding::quantized(4, QuantAxis::Token, 32), 0};
  for (Side side : {Side::Key, Side::Value}) {
    CandidateError e = candidateErrors(layer, side, {q4}, options)[0];
    auto [num, den] =
        directErrors(layer, side, q4.element, 0, options.scoreFrom);
    for (size_t h = 0; h < 2; ++h)
      EXPECT_NEAR(e.numerator[h], num[h], 2e-3 * num[h]) << sideName(side);
    EXPECT_NEAR(e.layerError(), (num[0] + num[1]) / (den[0] + den[1]),
                2e-3 * e.layerError());
  }
}

// Pruned keys: the direct computation builds the cache view by hand (the
// kept channels chosen from the group's queries and the compressed keys).
TEST(AttentionError, PrunedKeysMatchDirectViews) {
  const LayerStats layer = makeLayer(4, 2, 256, 64, 23);
  const unsigned residual = 64;
  const size_t scoreFrom = 128, n = layer.numTokens, d = layer.headDim;
  ErrorOptions options;
  options.residual = residual;
  options.scoreFrom = scoreFrom;
  const Candidate pruned{SideEncoding::quantized(4, QuantAxis::Channel, 32),
                         48};
  CandidateError e = candidateErrors(layer, Side::Key, {pruned}, options)[0];
  const size_t group = 2, compressed = n; // 256 is a multiple of R
  for (size_t kh = 0; kh < 2; ++kh) {
    const float *k = layer.keys.data() + kh * n * d;
    const float *v = layer.values.data() + kh * n * d;
    const float *q = layer.queries.data() + kh * group * n * d;
    std::vector<unsigned> kept =
        numerics::selectKeyChannels(q, group * n, k, compressed, d, 48);
    std::vector<float> view =
        numerics::pruneRoundTrip(k, compressed, d, kept, pruned.element);
    std::vector<float> k16(n * d), v16(n * d);
    for (size_t i = 0; i < n * d; ++i) {
      k16[i] = numerics::roundToHalf(k[i]);
      v16[i] = numerics::roundToHalf(v[i]);
    }
    double num = 0.0;
    for (size_t p = scoreFrom; p < n; ++p) {
      const size_t split = numerics::compressedTokenCount(p + 1, residual);
      std::vector<float> keys(k16.begin(), k16.begin() + (p + 1) * d);
      std::copy(view.begin(), view.begin() + split * d, keys.begin());
      for (size_t g = 0; g < group; ++g) {
        const float *qp = q + (g * n + p) * d;
        numerics::AttentionOptions opts;
        std::vector<double> o = numerics::referenceAttention(
            qp, 1, 1, keys.data(), v16.data(), 1, p + 1, d, opts);
        std::vector<double> r = numerics::referenceAttention(
            qp, 1, 1, k16.data(), v16.data(), 1, p + 1, d, opts);
        for (size_t i = 0; i < d; ++i)
          num += (o[i] - r[i]) * (o[i] - r[i]);
      }
    }
    EXPECT_NEAR(e.numerator[kh], num, 2e-3 * num) << "head " << kh;
  }
}
