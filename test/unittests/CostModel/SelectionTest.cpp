//===- SelectionTest.cpp - End-to-end selection under a budget ------------===//

#include "kvc/CostModel/Selection.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <cstdlib>
#include <random>

using namespace kvc;
using namespace kvc::cost;
using numerics::QuantAxis;
using numerics::SideEncoding;

namespace {
/// Synthetic layer statistics: keys with outlier channels (scaled by
/// keyScale), Gaussian values.
LayerStats syntheticLayer(unsigned id, unsigned seed, float keyScale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  LayerStats l;
  l.layer = id;
  l.numQueryHeads = 4;
  l.numKVHeads = 2;
  l.numTokens = 384;
  l.headDim = 32;
  for (size_t i = 0; i < 4 * 384 * 32; ++i)
    l.queries.push_back(normal(rng));
  for (size_t i = 0; i < 2 * 384 * 32; ++i) {
    l.keys.push_back(keyScale * normal(rng) * (i % 32 == 3 ? 8.0f : 1.0f));
    l.values.push_back(normal(rng));
  }
  return l;
}

CalibrationStats syntheticStats() {
  CalibrationStats s;
  s.path = "synthetic.safetensors";
  s.scoreFrom = 128;
  s.layers.emplace(0, syntheticLayer(0, 1));
  s.layers.emplace(1, syntheticLayer(1, 2));
  return s;
}

std::vector<LayerSpec> twoLayers() {
  return {{0, 2, 32, 128}, {1, 2, 32, 128}};
}

const SlotChoice &slotOf(const SelectionResult &r, unsigned layer, Side side,
                         int head = -1) {
  for (const SlotChoice &s : r.slots)
    if (s.layer == layer && s.side == side && s.head == head)
      return s;
  ADD_FAILURE() << "no slot";
  return r.slots.front();
}
} // namespace

TEST(Selection, AnalyticProxyWithoutStats) {
  SelectionOptions options;
  options.budget = 3.5;
  llvm::Expected<SelectionResult> r =
      selectBitwidths(twoLayers(), nullptr, options);
  ASSERT_TRUE(static_cast<bool>(r)) << llvm::toString(r.takeError());
  EXPECT_EQ(r->model, ModelKind::Analytic);
  EXPECT_EQ(r->slots.size(), 4u);
  EXPECT_LE(r->averageBits, 3.5);
  EXPECT_EQ(r->solverMethod, "dp");
  for (unsigned l : {0u, 1u}) {
    const SlotChoice &k = slotOf(*r, l, Side::Key);
    const SlotChoice &v = slotOf(*r, l, Side::Value);
    // The proxy penalizes per-token keys.
    ASSERT_TRUE(k.candidate.element.isQuant());
    EXPECT_EQ(k.candidate.element.quant.axis, QuantAxis::Channel);
    EXPECT_TRUE(v.candidate.element.isQuant());
    EXPECT_DOUBLE_EQ(k.bytesPerToken, k.bits * 2 * 32 / 8);
  }
  std::string text;
  llvm::raw_string_ostream os(text);
  printReport(*r, os);
  EXPECT_NE(text.find("cost model: analytic"), std::string::npos) << text;
}

TEST(Selection, MeasuredErrorsAndCalibration) {
  CalibrationStats stats = syntheticStats();
  SelectionOptions options;
  options.budget = 4.0;
  llvm::Expected<SelectionResult> plain =
      selectBitwidths(twoLayers(), &stats, options);
  ASSERT_TRUE(static_cast<bool>(plain)) << llvm::toString(plain.takeError());
  EXPECT_EQ(plain->model, ModelKind::AttentionError);
  EXPECT_NE(plain->note.find("not calibrated"), std::string::npos);
  EXPECT_LE(plain->averageBits, 4.0);
  // The predicted loss of a layer slot is its measured E.
  for (const SlotChoice &s : plain->slots)
    EXPECT_DOUBLE_EQ(s.predictedLoss, s.error);

  // Calibrate: layer 1's keys are 1000x as sensitive as anything else.
  const Candidate ref{SideEncoding::quantized(2, QuantAxis::Channel, 32), 0};
  const Candidate refV{SideEncoding::quantized(2, QuantAxis::Token, 32), 0};
  for (auto &[id, layer] : stats.layers) {
    layer.keyCalibration = SideCalibration{ref, id == 1 ? 10.0 : 0.01};
    layer.valueCalibration = SideCalibration{refV, 0.01};
  }
  llvm::Expected<SelectionResult> calibrated =
      selectBitwidths(twoLayers(), &stats, options);
  ASSERT_TRUE(static_cast<bool>(calibrated))
      << llvm::toString(calibrated.takeError());
  EXPECT_EQ(calibrated->model, ModelKind::Calibrated);
  ASSERT_EQ(calibrated->alphas.size(), 4u);
  // alpha = dloss / E_ref with E_ref measured like any candidate.
  ErrorOptions eo;
  eo.residual = 128;
  eo.scoreFrom = 128;
  const double eRef =
      candidateErrors(*stats.find(1), Side::Key, {ref}, eo)[0].layerError();
  for (const SideAlpha &a : calibrated->alphas)
    if (a.layer == 1 && a.side == Side::Key) {
      EXPECT_NEAR(a.referenceError, eRef, 1e-12 * eRef);
      EXPECT_NEAR(a.alpha, 10.0 / eRef, 1e-9 * a.alpha);
    }
  EXPECT_GT(slotOf(*calibrated, 1, Side::Key).bits,
            slotOf(*calibrated, 0, Side::Key).bits);
  for (const SlotChoice &s : calibrated->slots)
    EXPECT_GT(s.predictedLoss, 0.0);
}

TEST(Selection, PerHeadSlots) {
  CalibrationStats stats = syntheticStats();
  SelectionOptions options;
  options.budget = 3.0;
  options.granularity = Granularity::Head;
  llvm::Expected<SelectionResult> r =
      selectBitwidths(twoLayers(), &stats, options);
  ASSERT_TRUE(static_cast<bool>(r)) << llvm::toString(r.takeError());
  ASSERT_EQ(r->slots.size(), 8u);
  double loss = 0.0;
  for (const SlotChoice &s : r->slots) {
    EXPECT_GE(s.head, 0);
    EXPECT_EQ(s.heads, 1u);
    loss += s.predictedLoss;
  }
  EXPECT_NEAR(loss, r->totalPredictedLoss, 1e-12);
  EXPECT_LE(r->averageBits, 3.0);
  // Per-head choice is at least as good as per-layer at the same budget.
  options.granularity = Granularity::Layer;
  llvm::Expected<SelectionResult> perLayer =
      selectBitwidths(twoLayers(), &stats, options);
  ASSERT_TRUE(static_cast<bool>(perLayer));
  EXPECT_LE(r->totalPredictedLoss, perLayer->totalPredictedLoss * (1 + 1e-9));
}

TEST(Selection, Errors) {
  CalibrationStats stats = syntheticStats();
  SelectionOptions options;
  auto error = [&](std::vector<LayerSpec> layers, const CalibrationStats *s) {
    llvm::Expected<SelectionResult> r = selectBitwidths(layers, s, options);
    if (r) {
      ADD_FAILURE() << "selection succeeded";
      return std::string();
    }
    return llvm::toString(r.takeError());
  };
  EXPECT_EQ(error({{2, 2, 32, 128}}, &stats),
            "synthetic.safetensors: no statistics for layer 2 (expected "
            "tensors layer2.q/k/v)");
  EXPECT_EQ(error({{0, 2, 64, 128}}, &stats),
            "synthetic.safetensors: layer 0 has head_dim 32 in the statistics "
            "but 64 in the model");
  EXPECT_EQ(error({{0, 4, 32, 128}}, &stats),
            "synthetic.safetensors: layer 0 has 2 KV heads in the statistics "
            "but 4 in the model");
  options.budget = 2.0;
  EXPECT_EQ(error(twoLayers(), &stats),
            "budget 2 bits/element is infeasible: the cheapest candidates "
            "average 2.5000 bits/element");
  options.budget = -1.0;
  EXPECT_EQ(error(twoLayers(), nullptr),
            "budget must be a positive number of bits per element");
  options.budget = 4.0;
  stats.layers.at(0).keyCalibration = SideCalibration{
      Candidate{SideEncoding::quantized(2, QuantAxis::Channel, 64), 0}, 0.1};
  EXPECT_NE(error({{0, 2, 32, 32}}, &stats)
                .find("calibration encoding 'q2:channel:g64' of layer 0 key "
                      "is not valid here"),
            std::string::npos);
}

// The real tiny-lm Q/K/V as a statistics file, as is.
TEST(Selection, TinyLmStats) {
  const char *env = std::getenv("KVC_SHARED_DIR");
  llvm::SmallString<256> path(env && *env ? env : KVC_DEFAULT_SHARED_DIR);
  llvm::sys::path::append(path, "models", "tiny-lm", "qkv_layers.safetensors");
  if (!llvm::sys::fs::exists(path))
    GTEST_SKIP() << "model data not found at " << path.str().str();
  llvm::Expected<CalibrationStats> stats = loadStats(path);
  ASSERT_TRUE(static_cast<bool>(stats)) << llvm::toString(stats.takeError());
  ASSERT_EQ(stats->layers.size(), 6u);
  std::vector<LayerSpec> layers;
  for (unsigned l = 0; l < 6; ++l)
    layers.push_back({l, 2, 64, 128});
  SelectionOptions options;
  options.budget = 3.0;
  llvm::Expected<SelectionResult> r =
      selectBitwidths(layers, &*stats, options);
  ASSERT_TRUE(static_cast<bool>(r)) << llvm::toString(r.takeError());
  printReport(*r, llvm::outs());
  llvm::outs().flush();
  EXPECT_LE(r->averageBits, 3.0);
  EXPECT_GT(r->averageBits, 2.9); // the budget is used
  for (const SlotChoice &s : r->slots) {
    if (s.side == Side::Key && s.candidate.element.isQuant() &&
        s.candidate.element.quant.bits <= 4) {
      EXPECT_EQ(s.candidate.element.quant.axis, QuantAxis::Channel)
          << "layer " << s.layer << " keys " << s.candidate.toString();
    }
  }
  // Allocation beats the uniform KIVI-2 at the same memory (3 bits).
  double kivi = 0.0;
  ErrorOptions eo;
  for (unsigned l = 0; l < 6; ++l) {
    kivi += candidateErrors(*stats->find(l), Side::Key,
                            {{SideEncoding::quantized(2, QuantAxis::Channel,
                                                      32), 0}},
                            eo)[0]
                .layerError();
    kivi += candidateErrors(*stats->find(l), Side::Value,
                            {{SideEncoding::quantized(2, QuantAxis::Token, 32),
                              0}},
                            eo)[0]
                .layerError();
  }
  EXPECT_LT(r->totalPredictedLoss, kivi);
}
