//===- EvictTest.cpp - Eviction policies and attention mass ---------------===//

#include "kvc/Numerics/Evict.h"
#include "kvc/Numerics/Layout.h"
#include "kvc/Numerics/ReferenceAttention.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

using namespace kvc::numerics;

namespace {
EvictPolicy policy(EvictKind kind, size_t sink, size_t window, size_t budget) {
  EvictPolicy p;
  p.kind = kind;
  p.sink = sink;
  p.window = window;
  p.budget = budget;
  return p;
}

std::vector<uint8_t> allLive(size_t n) { return std::vector<uint8_t>(n, 1); }

size_t countLive(const std::vector<uint8_t> &keep) {
  return size_t(std::count(keep.begin(), keep.end(), uint8_t(1)));
}
} // namespace

TEST(Evict, CheckRejectsBadPolicies) {
  EXPECT_NE(checkEvictPolicy(policy(EvictKind::H2O, 0, 1, 0)), "");
  EXPECT_NE(checkEvictPolicy(policy(EvictKind::H2O, 4, 64, 32)), "");
  EXPECT_NE(checkEvictPolicy(policy(EvictKind::Streaming, 4, 60, 128)), "");
  EXPECT_NE(checkEvictPolicy(policy(EvictKind::H2O, 4, 0, 32)), "");
  EXPECT_EQ(checkEvictPolicy(policy(EvictKind::Streaming, 4, 60, 64)), "");
  EXPECT_EQ(checkEvictPolicy(policy(EvictKind::SnapKV, 0, 1, 1)), "");
}

TEST(Evict, ParseAndFormatRoundTrip) {
  EvictPolicy p;
  ASSERT_EQ(parseEvictPolicy("h2o:sink=4:window=64:budget=256", p), "");
  EXPECT_EQ(p.kind, EvictKind::H2O);
  EXPECT_EQ(p.budget, 256u);
  EXPECT_EQ(formatEvictPolicy(p), "h2o:sink=4:window=64:budget=256");
  ASSERT_EQ(parseEvictPolicy("streaming:sink=4:window=60", p), "");
  EXPECT_EQ(p.budget, 64u);
  EvictPolicy unchanged = p;
  EXPECT_NE(parseEvictPolicy("lru:budget=4", p), "");
  EXPECT_NE(parseEvictPolicy("h2o:sink=-1:window=4:budget=8", p), "");
  EXPECT_NE(parseEvictPolicy("h2o:sink:window=4:budget=8", p), "");
  EXPECT_NE(parseEvictPolicy("h2o:depth=3:window=4:budget=8", p), "");
  EXPECT_NE(parseEvictPolicy("h2o:window=4", p), ""); // budget 0
  EXPECT_EQ(formatEvictPolicy(p), formatEvictPolicy(unchanged));
}

TEST(Evict, PerHeadBudgets) {
  EvictPolicy p = policy(EvictKind::H2O, 2, 4, 16);
  p.headBudgets = {16, 8, 6};
  EXPECT_EQ(checkEvictPolicy(p), "");
  EXPECT_EQ(checkEvictPolicyHeads(p, 3), "");
  EXPECT_EQ(checkEvictPolicyHeads(p, 4),
            "eviction has 3 per-head budgets for 4 KV heads");
  EXPECT_EQ(p.forHead(1).budget, 8u);
  EXPECT_TRUE(p.forHead(1).headBudgets.empty());
  EXPECT_EQ(checkEvictPolicy(p.forHead(2)), "");

  // budget must be the largest head budget; each head obeys the rules.
  p.budget = 20;
  EXPECT_EQ(checkEvictPolicy(p),
            "eviction budget (20) must be the largest per-head budget (16)");
  p.budget = 16;
  p.headBudgets = {16, 5};
  EXPECT_EQ(checkEvictPolicy(p), "KV head 1: eviction sink (2) + window (4) "
                                 "must not exceed the budget (5)");
  EvictPolicy streaming = policy(EvictKind::Streaming, 2, 4, 6);
  streaming.headBudgets = {6, 6};
  EXPECT_NE(checkEvictPolicy(streaming), "");

  // Each head keeps its own budget of the same scores.
  const size_t n = 24;
  std::vector<float> scores(n);
  for (size_t t = 0; t < n; ++t)
    scores[t] = float((t * 7) % 11);
  p.headBudgets = {16, 8};
  for (size_t h = 0; h < 2; ++h) {
    std::vector<uint8_t> keep = allLive(n);
    EXPECT_EQ(selectKeptTokens(p.forHead(h), scores.data(), n, keep.data()),
              p.headBudgets[h]);
    EXPECT_EQ(countLive(keep), p.headBudgets[h]);
  }
}

TEST(Evict, ParsesAndFormatsPerHeadBudgets) {
  EvictPolicy p;
  ASSERT_EQ(parseEvictPolicy("h2o:sink=4:window=16:heads=64,32,48", p), "");
  EXPECT_EQ(p.budget, 64u);
  EXPECT_EQ(p.headBudgets, (std::vector<size_t>{64, 32, 48}));
  EXPECT_EQ(formatEvictPolicy(p), "h2o:sink=4:window=16:budget=64:heads=64,32,48");
  EvictPolicy again;
  ASSERT_EQ(parseEvictPolicy(formatEvictPolicy(p), again), "");
  EXPECT_TRUE(again == p);
  EXPECT_NE(parseEvictPolicy("h2o:sink=4:window=16:heads=64,,32", p), "");
  EXPECT_NE(parseEvictPolicy("h2o:sink=4:window=16:budget=32:heads=64,32", p),
            "");
  EXPECT_NE(parseEvictPolicy("streaming:sink=4:window=16:heads=20,20", p), "");
  EXPECT_EQ(p.headBudgets.size(), 3u); // unchanged by the failures
}

TEST(Evict, UnderBudgetKeepsEverything) {
  std::vector<float> scores = {0.5f, 0.1f, 0.9f};
  std::vector<uint8_t> keep = allLive(3);
  EXPECT_EQ(selectKeptTokens(policy(EvictKind::H2O, 0, 1, 3), scores.data(), 3,
                             keep.data()),
            3u);
  EXPECT_EQ(countLive(keep), 3u);
}

TEST(Evict, StreamingKeepsSinkAndWindow) {
  const size_t n = 100;
  std::vector<uint8_t> keep = allLive(n);
  EXPECT_EQ(selectKeptTokens(policy(EvictKind::Streaming, 4, 12, 16), nullptr,
                             n, keep.data()),
            16u);
  for (size_t t = 0; t < n; ++t)
    EXPECT_EQ(keep[t], t < 4 || t >= n - 12) << "token " << t;
}

TEST(Evict, HeavyHittersFillTheMiddleSlots) {
  // Budget 6: sink 1 + window 2 + 3 heavy hitters among tokens 1..7.
  std::vector<float> scores = {0, 5, 1, 7, 7, 2, 9, 0.5f, 0, 0};
  std::vector<uint8_t> keep = allLive(scores.size());
  EXPECT_EQ(selectKeptTokens(policy(EvictKind::H2O, 1, 2, 6), scores.data(),
                             scores.size(), keep.data()),
            6u);
  std::vector<uint8_t> expected = {1, 0, 0, 1, 1, 0, 1, 0, 1, 1};
  EXPECT_EQ(keep, expected);
}

TEST(Evict, TiesGoToTheLaterToken) {
  std::vector<float> scores(8, 1.0f);
  std::vector<uint8_t> keep = allLive(8);
  selectKeptTokens(policy(EvictKind::SnapKV, 0, 1, 3), scores.data(), 8,
                   keep.data());
  std::vector<uint8_t> expected = {0, 0, 0, 0, 0, 1, 1, 1};
  EXPECT_EQ(keep, expected);
}

TEST(Evict, EvictedTokensStayEvictedAndRandomMatchesBruteForce) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t n = 1 + rng() % 80;
    const size_t sink = rng() % 5, window = 1 + rng() % 8;
    const size_t budget = sink + window + rng() % 20;
    EvictPolicy p = policy(EvictKind::H2O, sink, window, budget);
    std::vector<float> scores(n);
    std::vector<uint8_t> keep(n);
    for (size_t t = 0; t < n; ++t) {
      // Few distinct values, so ties happen.
      scores[t] = std::floor(uniform(rng) * 6.0f);
      keep[t] = uniform(rng) < 0.8f;
    }
    std::vector<uint8_t> before = keep;
    size_t live = selectKeptTokens(p, scores.data(), n, keep.data());
    EXPECT_EQ(live, countLive(keep));
    // Brute force: protected live tokens, then the best others by (score,
    // position) descending.
    std::vector<uint8_t> expected = before;
    if (countLive(before) > budget) {
      std::vector<size_t> middle;
      size_t protectedLive = 0;
      for (size_t t = 0; t < n; ++t) {
        if (!before[t])
          continue;
        if (t < sink || t + window >= n)
          ++protectedLive;
        else
          middle.push_back(t);
      }
      std::sort(middle.begin(), middle.end(), [&](size_t a, size_t b) {
        return std::make_pair(scores[a], a) > std::make_pair(scores[b], b);
      });
      for (size_t i = budget - protectedLive; i < middle.size(); ++i)
        expected[middle[i]] = 0;
    }
    EXPECT_EQ(keep, expected) << "trial " << trial;
    for (size_t t = 0; t < n; ++t)
      EXPECT_TRUE(before[t] || !keep[t]); // never revived
  }
}

TEST(Evict, MassSumsTheQueryHeadsOfEachKVHead) {
  // 4 query heads over 2 KV heads, 3 tokens.
  std::vector<float> probs = {0.1f, 0.2f, 0.7f, 0.3f, 0.3f, 0.4f,
                              1.0f, 0.0f, 0.0f, 0.5f, 0.25f, 0.25f};
  std::vector<float> mass(6, 1.0f);
  accumulateAttentionMass(probs.data(), 4, 2, 3, mass.data());
  std::vector<float> expected = {1.4f, 1.5f, 2.1f, 2.5f, 1.25f, 1.25f};
  for (size_t i = 0; i < 6; ++i)
    EXPECT_FLOAT_EQ(mass[i], expected[i]);
}

TEST(Evict, ReferenceAttentionHidesEvictedKeysAndReportsMass) {
  const size_t hq = 4, hkv = 2, n = 9, d = 8;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  auto random = [&](size_t count) {
    std::vector<float> v(count);
    for (float &x : v)
      x = normal(rng);
    return v;
  };
  std::vector<float> q = random(hq * d), k = random(hkv * n * d),
                     v = random(hkv * n * d);
  std::vector<uint8_t> keep(hkv * n, 1);
  keep[2] = keep[5] = 0;      // head 0
  keep[n + 0] = 0;            // head 1
  AttentionOptions opts;
  opts.keep = keep.data();
  std::vector<double> mass(hkv * n, 0.0);
  std::vector<double> out =
      referenceAttention(q.data(), hq, 1, k.data(), v.data(), hkv, n, d, opts,
                         mass.data());
  // Same result as attending over the compacted live tokens only.
  for (size_t kh = 0; kh < hkv; ++kh) {
    std::vector<float> kc, vc;
    for (size_t t = 0; t < n; ++t)
      if (keep[kh * n + t]) {
        kc.insert(kc.end(), &k[(kh * n + t) * d], &k[(kh * n + t) * d] + d);
        vc.insert(vc.end(), &v[(kh * n + t) * d], &v[(kh * n + t) * d] + d);
      }
    AttentionOptions plain;
    std::vector<double> ref = referenceAttention(
        &q[kh * 2 * d], 2, 1, kc.data(), vc.data(), 1, kc.size() / d, d, plain);
    for (size_t i = 0; i < ref.size(); ++i)
      EXPECT_NEAR(out[kh * 2 * d + i], ref[i], 1e-12);
  }
  // Two query heads per KV head: each head's mass sums to 2, evicted 0.
  for (size_t kh = 0; kh < hkv; ++kh) {
    double sum = 0;
    for (size_t t = 0; t < n; ++t) {
      sum += mass[kh * n + t];
      if (!keep[kh * n + t])
        EXPECT_EQ(mass[kh * n + t], 0.0);
    }
    EXPECT_NEAR(sum, 2.0, 1e-12);
  }
}

// A demoted row is the encoding of one token alone: the same values as that
// token written into a page block and read back (what the runtime stores).
TEST(Evict, DemoteRowIsOneTokenThroughThePageLayout) {
  const unsigned D = 64, T = 32;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> row(D);
  for (float &x : row)
    x = normal(rng);
  for (const SideEncoding &side :
       {SideEncoding::quantized(2, QuantAxis::Token, 32),
        SideEncoding::quantized(3, QuantAxis::Token, 64),
        SideEncoding::quantized(8, QuantAxis::Token, 32),
        SideEncoding::fp8Format(FP8Format::E5M2), SideEncoding::plain()}) {
    ASSERT_EQ(checkDemoteEncoding(side), "");
    std::vector<float> demoted(D), paged(D);
    demoteRow(side, row.data(), D, demoted.data());
    const BlockLayout layout = computeBlockLayout(side, D, T);
    std::vector<uint8_t> block(layout.blockBytes, 0);
    writePageTokens(row.data(), 7, 1, side, D, T, block.data());
    readPageTokens(block.data(), 7, 1, side, D, T, paged.data());
    EXPECT_EQ(demoted, paged) << side.toString();
  }
  EXPECT_NE(checkDemoteEncoding(
                SideEncoding::quantized(2, QuantAxis::Channel, 32)),
            "");
}
