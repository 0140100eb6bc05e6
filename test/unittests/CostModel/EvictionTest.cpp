//===- EvictionTest.cpp - Token budgets in the cost model -----------------===//
//
// Token budgets from fractions, the eviction error and the kept-token
// candidate errors against direct fp64 computations written out here, the
// grouped knapsack against brute force, and the selection end to end.
//
//===----------------------------------------------------------------------===//

#include "kvc/CostModel/Eviction.h"
#include "kvc/CostModel/Selection.h"

#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/Half.h"

#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <cmath>
#include <functional>
#include <limits>
#include <random>

using namespace kvc;
using namespace kvc::cost;
using numerics::EvictKind;
using numerics::EvictPolicy;
using numerics::QuantAxis;
using numerics::SideEncoding;

namespace {
/// Q/K/V whose attention is far from uniform: a few keys (every 11th
/// token) align with the queries, so heavy hitters exist.
LayerStats peakedLayer(unsigned id, size_t hq, size_t hkv, size_t n, size_t d,
                       unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  LayerStats l;
  l.layer = id;
  l.numQueryHeads = hq;
  l.numKVHeads = hkv;
  l.numTokens = n;
  l.headDim = d;
  for (size_t i = 0; i < hq * n * d; ++i)
    l.queries.push_back(normal(rng) + (i % d == 0 ? 2.0f : 0.0f));
  for (size_t h = 0; h < hkv; ++h)
    for (size_t j = 0; j < n; ++j)
      for (size_t c = 0; c < d; ++c) {
        const float heavy = j % 11 == 3 && c == 0 ? 3.0f : 0.0f;
        l.keys.push_back(normal(rng) * (c % 5 == 1 ? 4.0f : 1.0f) + heavy);
        l.values.push_back(normal(rng));
      }
  return l;
}

/// Attention of one query (fp64) over the keys j <= p with visible[j].
std::vector<double> attendOne(const float *q, const std::vector<float> &keys,
                              const std::vector<float> &values, size_t p,
                              size_t d, const std::vector<bool> &visible,
                              std::vector<double> *probs = nullptr) {
  const double scale = 1.0 / std::sqrt(double(d));
  std::vector<double> s(p + 1, -std::numeric_limits<double>::infinity());
  double m = -std::numeric_limits<double>::infinity();
  for (size_t j = 0; j <= p; ++j) {
    if (!visible[j])
      continue;
    double dot = 0.0;
    for (size_t c = 0; c < d; ++c)
      dot += double(q[c]) * keys[j * d + c];
    s[j] = scale * dot;
    m = std::max(m, s[j]);
  }
  double z = 0.0;
  for (size_t j = 0; j <= p; ++j)
    z += visible[j] ? std::exp(s[j] - m) : 0.0;
  std::vector<double> out(d, 0.0);
  if (probs)
    probs->assign(p + 1, 0.0);
  for (size_t j = 0; j <= p; ++j) {
    if (!visible[j])
      continue;
    const double w = std::exp(s[j] - m) / z;
    if (probs)
      (*probs)[j] = w;
    for (size_t c = 0; c < d; ++c)
      out[c] += w * values[j * d + c];
  }
  return out;
}

/// One KV head's fp16-rounded keys or values.
std::vector<float> fp16Head(const std::vector<float> &x, size_t head,
                            size_t n, size_t d) {
  std::vector<float> out(n * d);
  for (size_t i = 0; i < n * d; ++i)
    out[i] = numerics::roundToHalf(x[head * n * d + i]);
  return out;
}
} // namespace

TEST(TokenBudget, FromFractions) {
  TokenBudget b;
  ASSERT_EQ(makeTokenBudget(0.5, 2048, 128, 1024, b), "");
  EXPECT_EQ(b.policy.kind, EvictKind::H2O);
  EXPECT_EQ(b.policy.sink, kEvictSink);
  EXPECT_EQ(b.policy.window, 128u);
  EXPECT_EQ(b.policy.budget, 1024u);
  EXPECT_EQ(b.keepFraction, 0.5);
  // Measured at the calibration length: the same share of 1024 tokens.
  EXPECT_EQ(b.calibration.budget, 512u);
  EXPECT_EQ(b.calibration.window, 128u);
  EXPECT_EQ(numerics::formatEvictPolicy(b.policy),
            "h2o:sink=4:window=128:budget=1024");
  // A context shorter than the calibration: the real budget.
  ASSERT_EQ(makeTokenBudget(0.75, 512, 64, 1024, b), "");
  EXPECT_EQ(b.policy.budget, 384u);
  EXPECT_EQ(b.calibration.budget, 384u);
  // Rounded to whole tokens; the cost uses the rounded share.
  ASSERT_EQ(makeTokenBudget(0.3, 1000, 16, 0, b), "");
  EXPECT_EQ(b.policy.budget, 300u);
  EXPECT_DOUBLE_EQ(b.keepFraction, 0.3);
  // Too small for sink + window, at the context or on the calibration.
  std::string problem = makeTokenBudget(0.25, 512, 128, 1024, b);
  EXPECT_NE(problem.find("token budget 0.25 x 512 = 128"), std::string::npos)
      << problem;
  EXPECT_NE(problem.find("must not exceed the budget"), std::string::npos);
  problem = makeTokenBudget(0.25, 4096, 128, 384, b);
  EXPECT_NE(problem.find("96 of the 384 calibration tokens"),
            std::string::npos)
      << problem;
  // R = 0: the window still keeps the newest token.
  ASSERT_EQ(makeTokenBudget(0.5, 64, 0, 64, b), "");
  EXPECT_EQ(b.policy.window, 1u);
}

TEST(TokenBudget, CheckFractions) {
  EXPECT_EQ(checkEvictFractions(defaultEvictFractions()), "");
  EXPECT_EQ(checkEvictFractions({0.5}), "");
  EXPECT_NE(checkEvictFractions({}).find("empty"), std::string::npos);
  EXPECT_NE(checkEvictFractions({1.5}).find("evict fraction 1.5 is not in"),
            std::string::npos);
  EXPECT_NE(checkEvictFractions({0.0}).find("not in (0, 1]"),
            std::string::npos);
  EXPECT_NE(checkEvictFractions({-0.5}).find("not in (0, 1]"),
            std::string::npos);
  EXPECT_NE(checkEvictFractions({std::nan("")}).find("not in (0, 1]"),
            std::string::npos);
  EXPECT_NE(checkEvictFractions({0.5, 1, 0.5}).find("0.5 is listed twice"),
            std::string::npos);
}

// The eviction run against the decode loop written out: softmax in fp64 over
// the live tokens, mass summed over the group's query heads, H2O scores,
// selectKeptTokens.
TEST(Eviction, MatchesDirectDecodeLoop) {
  const size_t hq = 4, hkv = 2, n = 96, d = 16, scoreFrom = 24;
  const LayerStats layer = peakedLayer(0, hq, hkv, n, d, 5);
  const EvictPolicy policy{EvictKind::H2O, 2, 8, 24};
  ErrorOptions options;
  options.scoreFrom = scoreFrom;
  options.threads = 2;
  std::vector<EvictionErrors> result =
      simulateEvictions({{&layer, policy}}, options);
  ASSERT_EQ(result.size(), 1u);
  const size_t group = hq / hkv;
  size_t evictedTotal = 0;
  for (size_t kv = 0; kv < hkv; ++kv) {
    const std::vector<float> keys = fp16Head(layer.keys, kv, n, d);
    const std::vector<float> values = fp16Head(layer.values, kv, n, d);
    std::vector<uint8_t> keep(n, 0);
    std::vector<float> scores(n, 0.0f);
    std::vector<double> mass(n, 0.0);
    std::vector<uint32_t> liveUntil(n, kNeverEvicted);
    double num = 0.0, den = 0.0;
    for (size_t p = 0; p < n; ++p) {
      keep[p] = 1;
      std::vector<bool> all(p + 1, true), live(p + 1);
      for (size_t j = 0; j <= p; ++j)
        live[j] = keep[j] != 0;
      for (size_t g = 0; g < group; ++g) {
        const float *q = layer.queries.data() + ((kv * group + g) * n + p) * d;
        std::vector<double> probs;
        const std::vector<double> ref = attendOne(q, keys, values, p, d, all);
        const std::vector<double> out =
            attendOne(q, keys, values, p, d, live, &probs);
        for (size_t j = 0; j <= p; ++j)
          mass[j] += probs[j];
        if (p >= scoreFrom)
          for (size_t c = 0; c < d; ++c) {
            num += (out[c] - ref[c]) * (out[c] - ref[c]);
            den += ref[c] * ref[c];
          }
      }
      for (size_t j = 0; j <= p; ++j)
        scores[j] = float(mass[j]);
      numerics::selectKeptTokens(policy, scores.data(), p + 1, keep.data());
      for (size_t j = 0; j <= p; ++j)
        if (live[j] && !keep[j])
          liveUntil[j] = uint32_t(p);
    }
    for (size_t j = 0; j < n; ++j)
      evictedTotal += liveUntil[j] != kNeverEvicted;
    EXPECT_EQ(result[0].liveUntil[kv], liveUntil) << "KV head " << kv;
    EXPECT_NEAR(result[0].error.numerator[kv], num, 1e-9 * den);
    EXPECT_NEAR(result[0].error.denominator[kv], den, 1e-9 * den);
    EXPECT_GT(num, 1e-4 * den) << "eviction should cost something";
  }
  // n - budget tokens of each head end up evicted.
  EXPECT_EQ(evictedTotal, hkv * (n - policy.budget));
  // Keeping every token costs nothing.
  const EvictPolicy everything{EvictKind::H2O, 2, 8, n};
  std::vector<EvictionErrors> none =
      simulateEvictions({{&layer, everything}}, options);
  EXPECT_EQ(none[0].error.layerError(), 0.0);
  EXPECT_NEAR(none[0].error.denominator[0], result[0].error.denominator[0],
              1e-12 * result[0].error.denominator[0]);
}

// Candidates on the kept tokens: the fp32 difference kernels with eviction
// masks against fp64 attention over explicitly built views, with the kept
// sets the eviction run recorded.
TEST(Eviction, KeptTokenCandidateErrorsMatchDirect) {
  const size_t hq = 4, hkv = 2, n = 160, d = 32, scoreFrom = 48;
  const unsigned residual = 32;
  const LayerStats layer = peakedLayer(0, hq, hkv, n, d, 9);
  ErrorOptions options;
  options.scoreFrom = scoreFrom;
  options.threads = 2;
  const EvictPolicy policy{EvictKind::H2O, 4, residual, 64};
  std::vector<EvictionErrors> evicted =
      simulateEvictions({{&layer, policy}}, options);
  const std::vector<SideEncoding> encodings = {
      SideEncoding::quantized(2, QuantAxis::Channel, 32),
      SideEncoding::quantized(3, QuantAxis::Token, 32)};
  LayerErrorRequest request;
  request.layer = &layer;
  request.residual = residual;
  for (const SideEncoding &e : encodings) {
    request.keyCandidates.push_back({e, 0});
    request.valueCandidates.push_back({e, 0});
  }
  request.keyCandidates.push_back(Candidate{});
  request.liveUntil = &evicted[0].liveUntil;
  std::vector<LayerErrors> errors = computeErrors({request}, options);
  // fp16 under eviction is still exactly 0.
  EXPECT_EQ(errors[0].key.back().numerator[0], 0.0);
  EXPECT_EQ(errors[0].key.back().numerator[1], 0.0);

  const size_t group = hq / hkv;
  const size_t maxCompressed = numerics::compressedTokenCount(n, residual);
  for (size_t e = 0; e < encodings.size(); ++e)
    for (Side side : {Side::Key, Side::Value})
      for (size_t kv = 0; kv < hkv; ++kv) {
        const std::vector<float> keys = fp16Head(layer.keys, kv, n, d);
        const std::vector<float> values = fp16Head(layer.values, kv, n, d);
        const std::vector<float> &raw = side == Side::Key ? layer.keys
                                                          : layer.values;
        const std::vector<float> view = numerics::compressRoundTrip(
            raw.data() + kv * n * d, maxCompressed, d, encodings[e]);
        const std::vector<uint32_t> &liveUntil = evicted[0].liveUntil[kv];
        double num = 0.0, den = 0.0;
        for (size_t p = scoreFrom; p < n; ++p) {
          const size_t split = numerics::compressedTokenCount(p + 1, residual);
          std::vector<float> k = keys, v = values;
          std::vector<float> &target = side == Side::Key ? k : v;
          std::copy_n(view.begin(), split * d, target.begin());
          std::vector<bool> live(p + 1);
          for (size_t j = 0; j <= p; ++j)
            live[j] = liveUntil[j] >= p;
          for (size_t g = 0; g < group; ++g) {
            const float *q =
                layer.queries.data() + ((kv * group + g) * n + p) * d;
            const std::vector<double> ref =
                attendOne(q, keys, values, p, d, live);
            const std::vector<double> out = attendOne(q, k, v, p, d, live);
            for (size_t c = 0; c < d; ++c) {
              num += (out[c] - ref[c]) * (out[c] - ref[c]);
              den += ref[c] * ref[c];
            }
          }
        }
        const CandidateError &got =
            side == Side::Key ? errors[0].key[e] : errors[0].value[e];
        EXPECT_GT(num, 0.0);
        EXPECT_NEAR(got.numerator[kv], num, 2e-3 * num)
            << sideName(side) << " candidate " << e << " head " << kv;
        EXPECT_NEAR(got.denominator[kv], den, 1e-4 * den);
      }
}

namespace {
/// The grouped optimum by enumerating every variant and every option of
/// every slot.
double bruteForceGroups(const std::vector<std::vector<GroupVariant>> &groups,
                        double budget) {
  double best = std::numeric_limits<double>::infinity();
  double weightSum = 0.0;
  for (const auto &g : groups)
    for (const Slot &s : g[0].slots)
      weightSum += s.weight;
  // Flatten into a mixed-radix counter: per group, the variant and then
  // each of its slots' options.
  std::vector<size_t> variant(groups.size(), 0);
  std::function<void(size_t, double, double)> walk = [&](size_t gi,
                                                         double cost,
                                                         double loss) {
    if (gi == groups.size()) {
      if (cost <= budget * weightSum + 1e-9)
        best = std::min(best, loss);
      return;
    }
    for (const GroupVariant &v : groups[gi]) {
      std::function<void(size_t, double, double)> slotWalk =
          [&](size_t si, double c, double l) {
            if (si == v.slots.size())
              return walk(gi + 1, c, l);
            for (const SlotOption &o : v.slots[si].options)
              slotWalk(si + 1, c + v.slots[si].weight * o.cost, l + o.loss);
          };
      slotWalk(0, cost, loss + v.fixedLoss);
    }
  };
  walk(0, 0.0, 0.0);
  return best;
}
} // namespace

// Layers with token budgets (variants scaling the K/V costs and adding an
// eviction loss) as combined slots: both solvers against brute force.
TEST(Eviction, GroupedSolverMatchesBruteForce) {
  std::mt19937 rng(77);
  std::uniform_int_distribution<int> quarterBits(8, 32); // 2..8 bits
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double fractions[] = {1.0, 0.75, 0.5, 0.25};
  int feasible = 0, evicting = 0;
  for (int trial = 0; trial < 150; ++trial) {
    const size_t numGroups = 1 + trial % 3, slotsPerGroup = 1 + trial % 2 + 1;
    const size_t numOptions = 1 + (trial / 3) % 3;
    const size_t numVariants = 1 + (trial / 9) % 4;
    std::vector<std::vector<GroupVariant>> groups(numGroups);
    for (auto &g : groups) {
      std::vector<std::pair<double, double>> base; // (cost, loss)
      // Equal weights, as a layer's K and V (or its heads') slots have.
      std::vector<double> weights(slotsPerGroup, 64.0);
      std::vector<std::vector<std::pair<double, double>>> options(
          slotsPerGroup);
      for (auto &o : options)
        for (size_t k = 0; k < numOptions; ++k) {
          const double cost = quarterBits(rng) / 4.0;
          o.push_back({cost, std::exp(-cost / 2.0) * (0.5 + unit(rng))});
        }
      for (size_t v = 0; v < numVariants; ++v) {
        GroupVariant var;
        const double f = fractions[v];
        var.fixedLoss = f == 1.0 ? 0.0 : (1.0 - f) * unit(rng);
        for (size_t s = 0; s < slotsPerGroup; ++s) {
          Slot slot;
          slot.weight = weights[s];
          for (auto [cost, loss] : options[s])
            slot.options.push_back({cost * f, loss * (0.8 + 0.4 * unit(rng))});
          var.slots.push_back(std::move(slot));
        }
        g.push_back(std::move(var));
      }
    }
    const double budget = 0.75 + 0.25 * (trial % 20);
    const double best = bruteForceGroups(groups, budget);
    std::vector<Slot> slots;
    std::vector<CombinedSlot> combined;
    for (const auto &g : groups) {
      llvm::Expected<CombinedSlot> c = combineGroup(g);
      ASSERT_TRUE(static_cast<bool>(c)) << llvm::toString(c.takeError());
      slots.push_back(c->slot);
      combined.push_back(std::move(*c));
    }
    // A combined slot's cost averages slotsPerGroup costs on a 1/16 grid:
    // the resolution selectBitwidths uses (32 per sub-slot) keeps the DP
    // exact.
    SolveOptions solveOptions;
    solveOptions.resolution = 32.0 * slotsPerGroup;
    llvm::Expected<Solution> dp = solveExact(slots, budget, solveOptions);
    llvm::Expected<Solution> lagrangian = solveLagrangian(slots, budget);
    if (!std::isfinite(best)) {
      EXPECT_FALSE(static_cast<bool>(dp)) << "trial " << trial;
      EXPECT_FALSE(static_cast<bool>(lagrangian));
      llvm::consumeError(dp.takeError());
      llvm::consumeError(lagrangian.takeError());
      continue;
    }
    ++feasible;
    ASSERT_TRUE(static_cast<bool>(dp)) << llvm::toString(dp.takeError());
    ASSERT_TRUE(static_cast<bool>(lagrangian))
        << llvm::toString(lagrangian.takeError());
    EXPECT_NEAR(dp->totalLoss, best, 1e-12) << "trial " << trial;
    EXPECT_LE(lagrangian->lowerBound, best + 1e-12);
    EXPECT_GE(lagrangian->totalLoss, best - 1e-12);
    // The choice maps back to a variant and options with that loss/cost.
    double loss = 0.0, cost = 0.0, weightSum = 0.0;
    for (size_t i = 0; i < groups.size(); ++i) {
      const GroupChoice &g = combined[i].choices[dp->choice[i]];
      const GroupVariant &v = groups[i][g.variant];
      evicting += g.variant > 0;
      loss += v.fixedLoss;
      for (size_t s = 0; s < v.slots.size(); ++s) {
        loss += v.slots[s].options[g.choice[s]].loss;
        cost += v.slots[s].weight * v.slots[s].options[g.choice[s]].cost;
        weightSum += v.slots[s].weight;
      }
    }
    EXPECT_NEAR(loss, dp->totalLoss, 1e-12);
    EXPECT_LE(cost, budget * weightSum + 1e-9);
  }
  EXPECT_GT(feasible, 80);
  EXPECT_GT(evicting, 10) << "the instances should exercise token budgets";
}

TEST(Eviction, CombineGroupErrors) {
  EXPECT_FALSE(static_cast<bool>(combineGroup({})));
  llvm::consumeError(combineGroup({}).takeError());
  GroupVariant a, b;
  a.slots = {Slot{1.0, {{2.0, 1.0}}}};
  b.slots = {Slot{2.0, {{2.0, 1.0}}}};
  llvm::Expected<CombinedSlot> c = combineGroup({a, b});
  ASSERT_FALSE(static_cast<bool>(c));
  EXPECT_NE(llvm::toString(c.takeError()).find("differ in weights"),
            std::string::npos);
  // Dominated joint choices are dropped; ties keep the earlier variant.
  GroupVariant keepAll, half;
  keepAll.slots = {Slot{1.0, {{4.0, 0.1}, {2.0, 0.5}}}};
  half.fixedLoss = 0.2;
  half.slots = {Slot{1.0, {{2.0, 0.1}, {1.0, 0.5}}}};
  llvm::Expected<CombinedSlot> d = combineGroup({keepAll, half});
  ASSERT_TRUE(static_cast<bool>(d));
  // (2, 0.5) of keepAll is dominated by (2, 0.3) of half.
  ASSERT_EQ(d->slot.options.size(), 3u);
  EXPECT_EQ(d->slot.options[0].cost, 1.0);
  EXPECT_EQ(d->choices[1].variant, 1u);
  EXPECT_DOUBLE_EQ(d->slot.options[1].loss, 0.3);
  EXPECT_EQ(d->choices[2].variant, 0u);
  EXPECT_EQ(d->slot.options[2].cost, 4.0);
}

namespace {
CalibrationStats peakedStats() {
  CalibrationStats s;
  s.path = "peaked.safetensors";
  s.scoreFrom = 128;
  s.layers.emplace(0, peakedLayer(0, 4, 2, 384, 32, 1));
  s.layers.emplace(1, peakedLayer(1, 4, 2, 384, 32, 2));
  return s;
}

std::vector<LayerSpec> twoLayersR64() {
  return {{0, 2, 32, 64}, {1, 2, 32, 64}};
}

SelectionResult selectOrFail(const CalibrationStats &stats,
                             const SelectionOptions &options) {
  llvm::Expected<SelectionResult> r =
      selectBitwidths(twoLayersR64(), &stats, options);
  if (!r) {
    ADD_FAILURE() << llvm::toString(r.takeError());
    return {};
  }
  return std::move(*r);
}
} // namespace

TEST(EvictionSelection, KeepAllOnlyIsTheQuantizationChoice) {
  const CalibrationStats stats = peakedStats();
  SelectionOptions options;
  options.budget = 3.0;
  options.threads = 2;
  const SelectionResult plain = selectOrFail(stats, options);
  options.context = 1024;
  options.evictFractions = {1.0};
  const SelectionResult keepAll = selectOrFail(stats, options);
  ASSERT_EQ(plain.slots.size(), keepAll.slots.size());
  for (size_t s = 0; s < plain.slots.size(); ++s) {
    EXPECT_EQ(plain.slots[s].candidate, keepAll.slots[s].candidate);
    EXPECT_FALSE(keepAll.slots[s].evict.has_value());
  }
  EXPECT_NEAR(plain.totalPredictedLoss, keepAll.totalPredictedLoss,
              1e-12 * plain.totalPredictedLoss);
  ASSERT_EQ(keepAll.evictions.size(), 2u);
  EXPECT_FALSE(keepAll.evictions[0].policy.has_value());
  EXPECT_TRUE(plain.evictions.empty());
}

TEST(EvictionSelection, TightBudgetEvicts) {
  const CalibrationStats stats = peakedStats();
  SelectionOptions options;
  // Below the cheapest encoding (q2, groups of 64: 2.5 bits): only token
  // budgets fit.
  options.budget = 1.5;
  options.threads = 2;
  options.context = 1024;
  const SelectionResult r = selectOrFail(stats, options);
  ASSERT_EQ(r.evictions.size(), 2u);
  double evictionLoss = 0.0, slotLoss = 0.0;
  for (const LayerEviction &e : r.evictions) {
    ASSERT_TRUE(e.policy.has_value()) << "layer " << e.layer;
    EXPECT_EQ(e.policy->kind, EvictKind::H2O);
    EXPECT_EQ(e.policy->window, 64u);
    EXPECT_EQ(e.policy->sink, kEvictSink);
    EXPECT_LT(e.keepFraction, 0.75);
    EXPECT_GT(e.error, 0.0);
    EXPECT_EQ(e.calibration.budget,
              size_t(std::llround(e.keepFraction * 384)));
    evictionLoss += e.predictedLoss;
  }
  for (const SlotChoice &s : r.slots) {
    ASSERT_TRUE(s.evict.has_value());
    EXPECT_EQ(s.keepFraction, double(s.evict->budget) / 1024);
    EXPECT_NEAR(s.bytesPerToken,
                s.bits * s.heads * s.headDim / 8.0 * s.keepFraction, 1e-12);
    slotLoss += s.predictedLoss;
  }
  EXPECT_LE(r.averageBits, 1.5 + 1e-12);
  EXPECT_NEAR(r.totalPredictedLoss, slotLoss + evictionLoss,
              1e-9 * r.totalPredictedLoss);
  EXPECT_TRUE(r.exact);
  // The report shows each layer's budget.
  std::string text;
  llvm::raw_string_ostream os(text);
  printReport(r, os);
  EXPECT_NE(text.find("token budgets: context 1024 tokens, fractions 1 0.75 "
                      "0.5 0.25"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("evict layer 0: h2o:sink=4:window=64:budget="),
            std::string::npos);
  const llvm::json::Value json = reportToJSON(r);
  const llvm::json::Object *slot =
      json.getAsObject()->getArray("slots")->front().getAsObject();
  EXPECT_EQ(slot->getString("evict")->str(),
            numerics::formatEvictPolicy(*r.slots.front().evict));
  EXPECT_EQ(*slot->getNumber("keep_fraction"), r.slots.front().keepFraction);
  EXPECT_EQ(*json.getAsObject()->getInteger("context"), 1024);
}

// granularity=head: every slot carries its layer's policy (per-head
// budgets: HeadBudgetTest.cpp) and keeps its own head's share.
TEST(EvictionSelection, HeadGranularityCarriesTheLayerPolicy) {
  const CalibrationStats stats = peakedStats();
  SelectionOptions options;
  options.budget = 2.0;
  options.threads = 2;
  options.context = 768;
  options.granularity = Granularity::Head;
  const SelectionResult r = selectOrFail(stats, options);
  ASSERT_EQ(r.slots.size(), 8u);
  for (const SlotChoice &s : r.slots) {
    const LayerEviction &e = r.evictions[s.layer];
    ASSERT_EQ(e.layer, s.layer);
    EXPECT_EQ(s.evict, e.policy);
    const double kept =
        s.evict ? double(s.evict->forHead(size_t(s.head)).budget) / 768 : 1.0;
    EXPECT_DOUBLE_EQ(s.keepFraction, kept);
  }
  EXPECT_LE(r.averageBits, 2.0 + 1e-12);
}

TEST(EvictionSelection, Errors) {
  const CalibrationStats stats = peakedStats();
  SelectionOptions options;
  options.budget = 3.0;
  options.context = 1024;
  llvm::Expected<SelectionResult> r =
      selectBitwidths(twoLayersR64(), nullptr, options);
  ASSERT_FALSE(static_cast<bool>(r));
  EXPECT_NE(llvm::toString(r.takeError()).find("need statistics"),
            std::string::npos);
  options.evictFractions = {0.5, 2.0};
  r = selectBitwidths(twoLayersR64(), &stats, options);
  ASSERT_FALSE(static_cast<bool>(r));
  EXPECT_NE(llvm::toString(r.takeError()).find("evict fraction 2 is not in"),
            std::string::npos);
  // Budgets too small for sink + window are skipped, and said so; with
  // none left the layer cannot be allocated.
  options.evictFractions = {1.0, 0.05};
  SelectionResult skipped = selectOrFail(stats, options);
  ASSERT_EQ(skipped.skippedBudgets.size(), 2u);
  EXPECT_NE(skipped.skippedBudgets[0].find("layer 0: token budget 0.05 x "
                                           "1024 = 51"),
            std::string::npos)
      << skipped.skippedBudgets[0];
  options.evictFractions = {0.05};
  r = selectBitwidths(twoLayersR64(), &stats, options);
  ASSERT_FALSE(static_cast<bool>(r));
  EXPECT_NE(llvm::toString(r.takeError())
                .find("layer 0: none of the token budgets is possible"),
            std::string::npos);
}
