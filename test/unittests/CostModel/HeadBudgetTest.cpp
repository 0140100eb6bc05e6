//===- HeadBudgetTest.cpp - Per-KV-head token budgets ----------------------===//
//
// granularity=head with a context: every KV head chooses its own token
// budget with its K and V encodings. The selection against brute force over
// every (budget, K, V) of every head, its per-head policies, and its report.
//
//===----------------------------------------------------------------------===//

#include "kvc/CostModel/Eviction.h"
#include "kvc/CostModel/Selection.h"

#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <cmath>
#include <limits>
#include <random>

using namespace kvc;
using namespace kvc::cost;
using numerics::EvictKind;
using numerics::EvictPolicy;

namespace {
/// Two KV heads (4 query heads) that attend differently: KV head 0's
/// queries align with a few heavy-hitter keys (every 23rd token), so H2O
/// loses little there; KV head 1's queries are small, its attention spread
/// over every token, so any eviction moves its output.
LayerStats twoKindsOfHeads(unsigned id, size_t n, size_t d, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  LayerStats l;
  l.layer = id;
  l.numQueryHeads = 4;
  l.numKVHeads = 2;
  l.numTokens = n;
  l.headDim = d;
  for (size_t h = 0; h < 4; ++h)
    for (size_t i = 0; i < n * d; ++i)
      l.queries.push_back(h < 2 ? normal(rng) + (i % d == 0 ? 4.0f : 0.0f)
                                : normal(rng));
  for (size_t kv = 0; kv < 2; ++kv)
    for (size_t j = 0; j < n; ++j)
      for (size_t c = 0; c < d; ++c) {
        const float heavy = kv == 0 && j % 23 == 3 && c == 0 ? 6.0f : 0.0f;
        l.keys.push_back(normal(rng) * (c % 5 == 1 ? 4.0f : 1.0f) + heavy);
        l.values.push_back(normal(rng));
      }
  return l;
}

CalibrationStats headStats(unsigned numLayers) {
  CalibrationStats s;
  s.path = "heads.safetensors";
  s.scoreFrom = 128;
  for (unsigned l = 0; l < numLayers; ++l)
    s.layers.emplace(l, twoKindsOfHeads(l, 384, 32, 11 + l));
  return s;
}

constexpr unsigned kResidual = 64;
constexpr size_t kContext = 1024;

SelectionOptions headOptions(double budget) {
  SelectionOptions options;
  options.budget = budget;
  options.threads = 2;
  options.context = kContext;
  options.evictFractions = {1.0, 0.5, 0.25};
  options.granularity = Granularity::Head;
  return options;
}

SelectionResult selectOrFail(unsigned numLayers, const CalibrationStats &stats,
                             const SelectionOptions &options) {
  std::vector<LayerSpec> layers;
  for (unsigned l = 0; l < numLayers; ++l)
    layers.push_back({l, 2, 32, kResidual});
  llvm::Expected<SelectionResult> r = selectBitwidths(layers, &stats, options);
  if (!r) {
    ADD_FAILURE() << llvm::toString(r.takeError());
    return {};
  }
  return std::move(*r);
}

/// One head's (budget, K, V) choice: its cost (sum of the two sides' bits
/// per element times the share kept) and predicted loss.
struct HeadOption {
  double cost, loss;
};
} // namespace

// One layer, two KV heads: the optimum over every (fraction, K, V) of each
// head, with the losses computed here from the public error runs (no
// calibration entries: alpha = 1; a head's losses are its numerators over
// the layer's unevicted denominators).
TEST(HeadBudgets, SelectionMatchesBruteForce) {
  const CalibrationStats stats = headStats(1);
  const LayerStats &layer = *stats.find(0);
  SelectionOptions options = headOptions(2.0);
  options.candidates.bits = {2, 4};
  options.candidates.groups = {32, 64};
  options.candidates.fp8 = false;

  ErrorOptions errorOptions;
  errorOptions.scoreFrom = stats.scoreFrom;
  errorOptions.threads = 2;
  LayerErrorRequest base;
  base.layer = &layer;
  base.residual = kResidual;
  base.keyCandidates = enumerateCandidates(Side::Key, 32, kResidual,
                                           options.candidates);
  base.valueCandidates = enumerateCandidates(Side::Value, 32, kResidual,
                                             options.candidates);
  const LayerErrors unevicted = computeErrors({base}, errorOptions)[0];
  auto sumDenominators = [](const CandidateError &e) {
    return e.denominator[0] + e.denominator[1];
  };

  std::vector<HeadOption> perHead[2];
  for (double f : options.evictFractions) {
    double keep = 1.0;
    CandidateError evictError{{0.0, 0.0}, {1.0, 1.0}};
    LayerErrors kept = unevicted;
    if (f < 1.0) {
      TokenBudget b;
      ASSERT_EQ(makeTokenBudget(f, kContext, kResidual, layer.numTokens, b),
                "");
      keep = b.keepFraction;
      std::vector<EvictionErrors> evicted =
          simulateEvictions({{&layer, b.calibration}}, errorOptions);
      evictError = evicted[0].error;
      LayerErrorRequest request = base;
      request.liveUntil = &evicted[0].liveUntil;
      kept = computeErrors({request}, errorOptions)[0];
    }
    for (size_t h = 0; h < 2; ++h)
      for (size_t k = 0; k < base.keyCandidates.size(); ++k)
        for (size_t v = 0; v < base.valueCandidates.size(); ++v) {
          const double cost =
              keep * (base.keyCandidates[k].bitsPerElement(32) +
                      base.valueCandidates[v].bitsPerElement(32));
          const double loss =
              evictError.numerator[h] / sumDenominators(evictError) +
              kept.key[k].numerator[h] / sumDenominators(unevicted.key[k]) +
              kept.value[v].numerator[h] /
                  sumDenominators(unevicted.value[v]);
          perHead[h].push_back({cost, loss});
        }
  }
  // Four slots of equal weight: their costs average to at most the budget.
  double best = std::numeric_limits<double>::infinity();
  for (const HeadOption &a : perHead[0])
    for (const HeadOption &b : perHead[1])
      if (a.cost + b.cost <= 4.0 * options.budget + 1e-9)
        best = std::min(best, a.loss + b.loss);
  ASSERT_TRUE(std::isfinite(best));

  const SelectionResult r = selectOrFail(1, stats, options);
  EXPECT_EQ(r.solverMethod, "dp");
  EXPECT_TRUE(r.exact);
  EXPECT_NEAR(r.totalPredictedLoss, best, 1e-9 * best);
  EXPECT_LE(r.averageBits, options.budget + 1e-12);

  // The heads differ: the focused head 0 evicts, the diffuse head 1 keeps
  // more (at 2 bits per element the cheapest encodings, 2.5 bits, need
  // eviction somewhere).
  ASSERT_EQ(r.evictions.size(), 1u);
  const LayerEviction &e = r.evictions[0];
  ASSERT_TRUE(e.policy.has_value());
  ASSERT_EQ(e.policy->headBudgets.size(), 2u) << formatEvictPolicy(*e.policy);
  EXPECT_LT(e.policy->headBudgets[0], e.policy->headBudgets[1]);
  EXPECT_EQ(e.policy->budget, e.policy->headBudgets[1]);
  EXPECT_EQ(numerics::checkEvictPolicy(*e.policy), "");
  EXPECT_EQ(numerics::checkEvictPolicyHeads(*e.policy, 2), "");
  EXPECT_EQ(numerics::checkEvictPolicy(e.calibration), "");
  ASSERT_EQ(e.calibration.headBudgets.size(), 2u);
  for (size_t h = 0; h < 2; ++h)
    EXPECT_EQ(e.calibration.headBudgets[h],
              size_t(std::llround(double(e.policy->headBudgets[h]) /
                                  double(kContext) * 384.0)));
  EXPECT_DOUBLE_EQ(e.keepFraction,
                   double(e.policy->headBudgets[0] + e.policy->headBudgets[1]) /
                       (2.0 * kContext));
}

// Two layers: per-head budgets include every per-layer choice, so they
// predict no more loss than granularity=layer; the slots, the layers'
// policies and the report agree.
TEST(HeadBudgets, PoliciesSlotsAndReport) {
  const CalibrationStats stats = headStats(2);
  const SelectionOptions options = headOptions(2.0);
  SelectionOptions layerOptions = options;
  layerOptions.granularity = Granularity::Layer;
  const SelectionResult perLayer = selectOrFail(2, stats, layerOptions);
  const SelectionResult r = selectOrFail(2, stats, options);
  EXPECT_TRUE(perLayer.exact);
  EXPECT_TRUE(r.exact);
  EXPECT_LE(r.totalPredictedLoss, perLayer.totalPredictedLoss * (1 + 1e-12));
  ASSERT_EQ(r.slots.size(), 8u);
  ASSERT_EQ(r.evictions.size(), 2u);

  double loss = 0.0;
  for (const LayerEviction &e : r.evictions) {
    loss += e.predictedLoss;
    ASSERT_TRUE(e.policy.has_value());
    EXPECT_EQ(e.policy->kind, EvictKind::H2O);
    EXPECT_EQ(e.policy->window, kResidual);
  }
  for (const SlotChoice &s : r.slots) {
    loss += s.predictedLoss;
    ASSERT_GE(s.head, 0);
    const LayerEviction &e = r.evictions[s.layer];
    ASSERT_TRUE(s.evict.has_value());
    EXPECT_EQ(*s.evict, *e.policy) << "slots carry the layer's policy";
    const size_t headBudget = s.evict->forHead(size_t(s.head)).budget;
    EXPECT_DOUBLE_EQ(s.keepFraction, double(headBudget) / kContext);
    EXPECT_NEAR(s.bytesPerToken, s.bits * 32 / 8.0 * s.keepFraction, 1e-12);
  }
  EXPECT_NEAR(r.totalPredictedLoss, loss, 1e-9 * loss);

  // Here layer 1's heads differ (layer 0's agree).
  size_t split = 0;
  while (split < 2 && r.evictions[split].policy->headBudgets.empty())
    ++split;
  ASSERT_LT(split, 2u) << "the heads should choose different budgets";
  const EvictPolicy &policy = *r.evictions[split].policy;

  std::string text;
  llvm::raw_string_ostream os(text);
  printReport(r, os);
  EXPECT_NE(text.find("(H2O, sink 4, window R, per KV head)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("evict layer " + std::to_string(split) + ": " +
                      formatEvictPolicy(policy) + " (keep "),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(":heads="), std::string::npos) << text;
  // Each row shows its head's own policy.
  for (size_t h = 0; h < 2; ++h)
    EXPECT_NE(text.find("h2o:sink=4:window=64:budget=" +
                        std::to_string(policy.headBudgets[h]) + "\n"),
              std::string::npos)
        << text;

  const llvm::json::Value json = reportToJSON(r);
  for (const llvm::json::Value &value : *json.getAsObject()->getArray("slots")) {
    const llvm::json::Object *slot = value.getAsObject();
    const int64_t layer = *slot->getInteger("layer");
    const int64_t head = *slot->getInteger("head");
    const EvictPolicy &p = *r.evictions[size_t(layer)].policy;
    EXPECT_EQ(slot->getString("evict")->str(), formatEvictPolicy(p));
    EXPECT_EQ(*slot->getInteger("token_budget"),
              int64_t(p.forHead(size_t(head)).budget));
  }
  const llvm::json::Object *entry =
      (*json.getAsObject()->getArray("evictions"))[split].getAsObject();
  EXPECT_EQ(entry->getString("evict")->str(), formatEvictPolicy(policy));
  const llvm::json::Array *heads = entry->getArray("head_budgets");
  ASSERT_NE(heads, nullptr);
  ASSERT_EQ(heads->size(), 2u);
  for (size_t h = 0; h < 2; ++h)
    EXPECT_EQ(*(*heads)[h].getAsInteger(), int64_t(policy.headBudgets[h]));
  const llvm::json::Array *calibration =
      entry->getArray("calibration_head_budgets");
  ASSERT_NE(calibration, nullptr);
  EXPECT_EQ(*(*calibration)[0].getAsInteger(),
            int64_t(r.evictions[split].calibration.headBudgets[0]));
}

// Heads that agree share one budget (no head budgets); heads that all keep
// every token give no policy, as with granularity=layer.
TEST(HeadBudgets, AgreeingHeadsShareOneBudget) {
  const CalibrationStats stats = headStats(1);
  SelectionOptions options = headOptions(2.0);
  options.evictFractions = {0.5};
  SelectionResult r = selectOrFail(1, stats, options);
  ASSERT_TRUE(r.evictions[0].policy.has_value());
  EXPECT_TRUE(r.evictions[0].policy->headBudgets.empty());
  EXPECT_EQ(r.evictions[0].policy->budget, 512u);
  EXPECT_EQ(r.evictions[0].keepFraction, 0.5);
  const llvm::json::Value json = reportToJSON(r);
  EXPECT_EQ(json.getAsObject()
                ->getArray("evictions")
                ->front()
                .getAsObject()
                ->getArray("head_budgets"),
            nullptr);

  options = headOptions(8.0);
  options.evictFractions = {1.0};
  r = selectOrFail(1, stats, options);
  EXPECT_FALSE(r.evictions[0].policy.has_value());
  for (const SlotChoice &s : r.slots) {
    EXPECT_FALSE(s.evict.has_value());
    EXPECT_EQ(s.keepFraction, 1.0);
  }
}
