//===- ReferenceAttentionTest.cpp - Oracle, residual rule, simulation -----===//

#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/ReferenceAttention.h"

#include "gtest/gtest.h"

#include <cmath>
#include <random>

using namespace kvc::numerics;

namespace {
std::vector<float> randomVector(size_t n, unsigned seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(n);
  for (float &x : v)
    x = normal(rng);
  return v;
}

/// Attention written the obvious way, independently of the library: explicit
/// mask, max-subtracted softmax, one query at a time.
std::vector<double> naiveAttention(const std::vector<float> &q, size_t hq,
                                   size_t lq, const std::vector<float> &k,
                                   const std::vector<float> &v, size_t hkv,
                                   size_t n, size_t d,
                                   const AttentionOptions &o) {
  std::vector<double> out(hq * lq * d, 0.0);
  const double scale = o.scale != 0 ? o.scale : 1.0 / std::sqrt(double(d));
  for (size_t h = 0; h < hq; ++h) {
    const size_t kh = h / (hq / hkv);
    for (size_t i = 0; i < lq; ++i) {
      const long p = long(n - lq + i);
      std::vector<double> s(n);
      std::vector<bool> visible(n);
      double mx = -INFINITY;
      for (size_t j = 0; j < n; ++j) {
        double dot = 0;
        for (size_t c = 0; c < d; ++c)
          dot += double(q[(h * lq + i) * d + c]) * k[(kh * n + j) * d + c];
        s[j] = dot * scale;
        if (o.softcap > 0)
          s[j] = o.softcap * std::tanh(s[j] / o.softcap);
        if (o.mask)
          s[j] += o.mask[((o.maskPerHead ? h : 0) * lq + i) * n + j];
        visible[j] = (!o.causal || long(j) <= p) &&
                     (o.window == 0 || long(j) > p - long(o.window));
        if (visible[j])
          mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (size_t j = 0; j < n; ++j)
        sum += visible[j] ? std::exp(s[j] - mx) : 0.0;
      for (size_t j = 0; j < n; ++j) {
        if (!visible[j])
          continue;
        const double w = std::exp(s[j] - mx) / sum;
        for (size_t c = 0; c < d; ++c)
          out[(h * lq + i) * d + c] += w * v[(kh * n + j) * d + c];
      }
    }
  }
  return out;
}

void expectClose(const std::vector<double> &a, const std::vector<double> &b,
                 double tol = 1e-12) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], b[i], tol) << "at " << i;
}
} // namespace

TEST(ReferenceAttention, MatchesNaive) {
  struct Case {
    size_t hq, hkv, lq, n, d;
    AttentionOptions o;
  };
  const Case cases[] = {
      {4, 2, 1, 37, 16, {}},                      // decode, GQA 2
      {8, 2, 5, 40, 32, {}},                      // q_len > 1, GQA 4
      {2, 2, 12, 12, 8, {}},                      // full prefill, MHA
      {4, 1, 3, 50, 16, {0.3, true, 7, 0.0}},     // window
      {4, 2, 4, 33, 16, {0.0, true, 0, 5.0}},     // softcap
      {4, 2, 6, 20, 16, {0.0, false, 0, 0.0}},    // non-causal
      {2, 1, 6, 25, 16, {0.2, false, 4, 2.0}},    // non-causal + window + cap
      {4, 4, 9, 9, 64, {0.0, true, 3, 30.0}},
  };
  unsigned seed = 1;
  for (const Case &c : cases) {
    const auto q = randomVector(c.hq * c.lq * c.d, seed++, 2.0f);
    const auto k = randomVector(c.hkv * c.n * c.d, seed++, 2.0f);
    const auto v = randomVector(c.hkv * c.n * c.d, seed++);
    expectClose(referenceAttention(q.data(), c.hq, c.lq, k.data(), v.data(),
                                   c.hkv, c.n, c.d, c.o),
                naiveAttention(q, c.hq, c.lq, k, v, c.hkv, c.n, c.d, c.o));
  }
}

TEST(ReferenceAttention, MaskIsAddedAfterTheSoftcap) {
  const size_t hq = 4, hkv = 2, lq = 3, n = 29, d = 16;
  const auto q = randomVector(hq * lq * d, 40, 2.0f);
  const auto k = randomVector(hkv * n * d, 41, 2.0f);
  const auto v = randomVector(hkv * n * d, 42);
  for (bool perHead : {false, true}) {
    std::vector<float> mask =
        randomVector((perHead ? hq : 1) * lq * n, perHead ? 43 : 44);
    // Padding: the first 5 keys of every row hidden.
    for (size_t r = 0; r < mask.size() / n; ++r)
      for (size_t j = 0; j < 5; ++j)
        mask[r * n + j] = -INFINITY;
    AttentionOptions o;
    o.softcap = 4.0;
    o.mask = mask.data();
    o.maskPerHead = perHead;
    const auto got =
        referenceAttention(q.data(), hq, lq, k.data(), v.data(), hkv, n, d, o);
    expectClose(got, naiveAttention(q, hq, lq, k, v, hkv, n, d, o));
    // And the mask moves the output.
    AttentionOptions unmasked;
    unmasked.softcap = 4.0;
    const auto plain = referenceAttention(q.data(), hq, lq, k.data(), v.data(),
                                          hkv, n, d, unmasked);
    double moved = 0;
    for (size_t i = 0; i < got.size(); ++i)
      moved = std::max(moved, std::fabs(got[i] - plain[i]));
    EXPECT_GT(moved, 0.05) << perHead;
  }
}

TEST(ReferenceAttention, MinusInfinityMaskHidesKeysAsEviction) {
  const size_t hq = 2, hkv = 1, n = 17, d = 8;
  const auto q = randomVector(hq * d, 45);
  const auto k = randomVector(n * d, 46);
  const auto v = randomVector(n * d, 47);
  std::vector<float> mask(n, 0.0f);
  std::vector<uint8_t> keep(n, 1);
  for (size_t j : {0u, 3u, 4u, 11u}) {
    mask[j] = -INFINITY;
    keep[j] = 0;
  }
  AttentionOptions masked, evicted;
  masked.mask = mask.data();
  evicted.keep = keep.data();
  EXPECT_EQ(referenceAttention(q.data(), hq, 1, k.data(), v.data(), hkv, n, d,
                               masked),
            referenceAttention(q.data(), hq, 1, k.data(), v.data(), hkv, n, d,
                               evicted));
}

TEST(ReferenceAttention, GQAMapping) {
  // kv head g has constant value g: query head h must output h / ratio.
  const size_t hq = 8, hkv = 2, n = 10, d = 4;
  const auto q = randomVector(hq * d, 3);
  const auto k = randomVector(hkv * n * d, 4);
  std::vector<float> v(hkv * n * d);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<float>(i / (n * d));
  const auto out = referenceAttention(q.data(), hq, 1, k.data(), v.data(), hkv,
                                      n, d, {});
  for (size_t h = 0; h < hq; ++h)
    for (size_t c = 0; c < d; ++c)
      EXPECT_NEAR(out[h * d + c], double(h / 4), 1e-12);
}

TEST(ReferenceAttention, CausalAndWindowSelectKeys) {
  const size_t n = 6, d = 3;
  const auto q = randomVector(n * d, 5);
  const auto k = randomVector(n * d, 6);
  const auto v = randomVector(n * d, 7);
  // Causal prefill: query 0 sees only key 0.
  auto out = referenceAttention(q.data(), 1, n, k.data(), v.data(), 1, n, d,
                                {});
  for (size_t c = 0; c < d; ++c)
    EXPECT_NEAR(out[c], v[c], 1e-15);
  // Window 1: every query sees only its own position.
  AttentionOptions w1;
  w1.window = 1;
  out = referenceAttention(q.data(), 1, n, k.data(), v.data(), 1, n, d, w1);
  for (size_t i = 0; i < n * d; ++i)
    EXPECT_NEAR(out[i], v[i], 1e-15);
}

TEST(ReferenceAttention, SoftcapFlattensLargeScores) {
  const size_t n = 4, d = 2;
  std::vector<float> q = {100.0f, 0.0f};
  std::vector<float> k = {100, 0, -100, 0, 50, 0, 0, 0};
  std::vector<float> v = {1, 0, 0, 1, 2, 2, -1, 3};
  AttentionOptions o;
  o.scale = 1.0;
  o.softcap = 1e-3; // all scores ~ +-1e-3: nearly uniform weights
  const auto out = referenceAttention(q.data(), 1, 1, k.data(), v.data(), 1,
                                      n, d, o);
  EXPECT_NEAR(out[0], 0.5, 1e-3);
  EXPECT_NEAR(out[1], 1.5, 1e-3);
}

TEST(Cache, ResidualRule) {
  EXPECT_EQ(compressedTokenCount(0, 128), 0u);
  EXPECT_EQ(compressedTokenCount(127, 128), 0u);
  EXPECT_EQ(compressedTokenCount(128, 128), 128u);
  EXPECT_EQ(compressedTokenCount(1000, 128), 896u);
  EXPECT_EQ(compressedTokenCount(7, 0), 7u);
}

TEST(Cache, Validation) {
  const SideEncoding k2 = SideEncoding::quantized(2, QuantAxis::Channel, 32);
  const SideEncoding v2 = SideEncoding::quantized(2, QuantAxis::Token, 32);
  EXPECT_EQ(validateCacheEncoding({k2, v2, 128}, 64), "");
  EXPECT_NE(validateCacheEncoding({k2, v2, 0}, 64).find("key: "),
            std::string::npos);
  EXPECT_NE(validateCacheEncoding({k2, v2, 48}, 64).find("multiple of"),
            std::string::npos);
  EXPECT_NE(validateCacheEncoding({k2, v2, 128}, 48).find("value: "),
            std::string::npos);
  EXPECT_EQ(validateCacheEncoding(
                {SideEncoding::fp8Format(FP8Format::E4M3), v2, 0}, 64),
            "");
  EXPECT_EQ(k2.toString(), "quant<bits=2, axis=channel, group=32>");
  EXPECT_EQ(SideEncoding::fp8Format(FP8Format::E5M2).toString(), "fp8<e5m2>");
  EXPECT_EQ(SideEncoding::plain().toString(), "fp16");
  EXPECT_EQ(k2.tokenGranularity(), 32u);
  EXPECT_EQ(v2.tokenGranularity(), 1u);
}

TEST(Cache, SimulateSplitsCompressedAndResidual) {
  const size_t n = 100, d = 32;
  const auto x = randomVector(n * d, 11);
  const SideEncoding k2 = SideEncoding::quantized(2, QuantAxis::Channel, 32);
  const auto view = simulateCacheSide(x.data(), n, d, k2, 32);
  const auto full = compressRoundTrip(x.data(), 96, d, k2);
  for (size_t i = 0; i < 96 * d; ++i)
    EXPECT_EQ(view[i], full[i]);
  for (size_t i = 96 * d; i < n * d; ++i)
    EXPECT_EQ(view[i], roundToHalf(x[i]));
  // R = 0 with per-token values: everything compressed.
  const SideEncoding v2 = SideEncoding::quantized(2, QuantAxis::Token, 32);
  EXPECT_EQ(simulateCacheSide(x.data(), n, d, v2, 0),
            compressRoundTrip(x.data(), n, d, v2));
  // Plain: fp16 everywhere.
  const auto plain = simulateCacheSide(x.data(), n, d, SideEncoding::plain(),
                                       0);
  for (size_t i = 0; i < n * d; ++i)
    EXPECT_EQ(plain[i], roundToHalf(x[i]));
}

// teacherForcedAttention == referenceAttention over simulateCache(n = p + 1)
// for every query position.
TEST(Cache, TeacherForcingMatchesPerPositionSimulation) {
  const size_t hq = 4, hkv = 2, n = 80, d = 32;
  const auto q = randomVector(hq * n * d, 21);
  const auto k = randomVector(hkv * n * d, 22, 3.0f);
  const auto v = randomVector(hkv * n * d, 23);
  const SideEncoding kc = SideEncoding::quantized(2, QuantAxis::Channel, 32);
  const SideEncoding vt = SideEncoding::quantized(3, QuantAxis::Token, 32);
  const CacheEncoding encs[] = {
      {kc, vt, 32},
      {SideEncoding::fp8Format(FP8Format::E4M3), vt, 0},
      {vt, SideEncoding::plain(), 16},
      {SideEncoding::plain(), SideEncoding::plain(), 0},
  };
  for (const CacheEncoding &enc : encs)
    for (size_t window : {size_t{0}, size_t{20}}) {
      AttentionOptions o;
      o.window = window;
      const size_t first = 10;
      const auto tf = teacherForcedAttention(q.data(), k.data(), v.data(), hq,
                                             hkv, n, d, enc, o, first);
      for (size_t p = first; p < n; ++p) {
        const size_t len = p + 1;
        std::vector<float> kp(hkv * len * d), vp(hkv * len * d);
        for (size_t h = 0; h < hkv; ++h)
          for (size_t i = 0; i < len * d; ++i) {
            kp[h * len * d + i] = k[h * n * d + i];
            vp[h * len * d + i] = v[h * n * d + i];
          }
        const SimulatedCache c =
            simulateCache(kp.data(), vp.data(), hkv, len, d, enc);
        std::vector<float> qp(hq * d);
        for (size_t h = 0; h < hq; ++h)
          for (size_t i = 0; i < d; ++i)
            qp[h * d + i] = q[(h * n + p) * d + i];
        const auto ref = referenceAttention(qp.data(), hq, 1, c.keys.data(),
                                            c.values.data(), hkv, len, d, o);
        for (size_t h = 0; h < hq; ++h)
          for (size_t i = 0; i < d; ++i)
            ASSERT_NEAR(tf[(h * (n - first) + p - first) * d + i],
                        ref[h * d + i], 1e-13)
                << enc.toString() << " p " << p;
      }
    }
}

TEST(Cache, RelativeError) {
  EXPECT_DOUBLE_EQ(relativeError({1, 1}, {1, 1}), 0.0);
  EXPECT_DOUBLE_EQ(relativeError({3, 0}, {0, 4}), 1.25);
}
