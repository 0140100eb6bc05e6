//===- ModelTest.cpp - Randomized model-based test of the runtime ---------===//
//
// >= 10^6 random create / fork / free / append operations (plus calls that
// must fail), spread over every preset configuration on the CPU and
// CPU_STAGED backends, each checked against the reference model of
// ModelDriver.h; every invariant is re-checked in full every few thousand
// operations. KVC_RT_MODEL_OPS sets the total (CI's sanitizer run uses
// fewer), KVC_RT_MODEL_SEED the seed.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>

using namespace kvc::rt::testing;

namespace {
uint64_t envOr(const char *name, uint64_t fallback) {
  const char *v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}
constexpr uint64_t kFullCheckEvery = 2500;
} // namespace

class RuntimeModel
    : public ::testing::TestWithParam<std::tuple<size_t, uint32_t>> {};

TEST_P(RuntimeModel, RandomOperationsMatchTheModel) {
  const size_t presetIndex = std::get<0>(GetParam());
  const uint32_t backend = std::get<1>(GetParam());
  const uint64_t instances = numPresets() * 2;
  const uint64_t total = envOr("KVC_RT_MODEL_OPS", 1000000);
  const uint64_t ops = (total + instances - 1) / instances;
  const uint64_t seed =
      envOr("KVC_RT_MODEL_SEED", 20240601) * 31 + presetIndex * 2 + backend;

  ModelDriver driver;
  ASSERT_EQ(driver.init(preset(presetIndex, backend)), "");
  RandomChoices choices(seed);
  for (uint64_t i = 1; i <= ops; ++i) {
    std::string err = driver.step(choices);
    if (err.empty() && i % kFullCheckEvery == 0)
      err = driver.checkAll();
    ASSERT_EQ(err, "") << "operation " << i << " (seed " << seed << ")";
  }
  ASSERT_EQ(driver.checkAll(), "");
  const OpCounts c = driver.counts();
  ASSERT_EQ(driver.finish(), "");
  EXPECT_EQ(c.steps, ops);
  // Every kind of operation ran (the mix is fixed by ModelDriver::step).
  EXPECT_GT(c.create, 0u);
  EXPECT_GT(c.append, 0u);
  EXPECT_GT(c.fork, 0u);
  EXPECT_GT(c.free, 0u);
  EXPECT_GT(c.expectedFailures, 0u);
  EXPECT_GT(c.evict, 0u);
  if (ops >= 10000) {
    EXPECT_GT(c.reserved, c.reserveBatches); // some batches of several
    EXPECT_GT(c.evictedTokens, 0u);
    EXPECT_GT(c.holes, 0u); // pages released by eviction
    if (backend == KVC_RT_BACKEND_CPU) {
      EXPECT_GT(c.demotedTokens, 0u); // two-tier eviction
    }
  }
  // Copy-on-write happens where compressed boundaries fall inside pages.
  const ModelConfig config = preset(presetIndex, backend);
  bool partialPages = false;
  for (const kvc_rt_encoding &e : config.encodings)
    partialPages |= e.residual == 0 || e.residual % config.config.page_tokens;
  if (ops >= 10000 && partialPages) {
    EXPECT_GT(c.copyOnWrites, 0u);
  }
  std::cout << "[model] " << preset(presetIndex, backend).name << "/"
            << (backend == KVC_RT_BACKEND_CPU ? "cpu" : "cpu-staged") << ": "
            << c.steps << " ops (create " << c.create << ", fork " << c.fork
            << ", free " << c.free << ", append " << c.append << " ("
            << c.reserved << " reserved in " << c.reserveBatches
            << " batches) with " << c.appendedTokens << " tokens, "
            << c.copyOnWrites << " copy-on-write, evict " << c.evict
            << " dropping " << c.evictedTokens << " tokens (" << c.demotedTokens
            << " demoted) and " << c.holes << " pages), failing calls "
            << c.expectedFailures << "), " << c.fullChecks << " full checks\n";
}

INSTANTIATE_TEST_SUITE_P(
    PresetsAndBackends, RuntimeModel,
    ::testing::Combine(::testing::Range<size_t>(0, numPresets()),
                       ::testing::Values(uint32_t(KVC_RT_BACKEND_CPU),
                                         uint32_t(KVC_RT_BACKEND_CPU_STAGED))));

// What the fuzzer does for a quarter of its inputs: every preset with a
// random encoding per KV head (the layer's residual kept), a shorter run.
TEST(RuntimeModelRandomHeads, RandomPerHeadEncodingsMatchTheModel) {
  const uint64_t ops =
      std::max<uint64_t>(1000, envOr("KVC_RT_MODEL_OPS", 1000000) / 20) /
      numPresets();
  for (size_t p = 0; p < numPresets(); ++p) {
    RandomChoices choices(envOr("KVC_RT_MODEL_SEED", 20240601) + 7 * p);
    ModelConfig config = preset(p, p % 2 ? KVC_RT_BACKEND_CPU_STAGED
                                         : KVC_RT_BACKEND_CPU);
    randomizeHeadEncodings(config, choices);
    ASSERT_EQ(config.config.encodings_per_layer, config.config.kv_heads);
    ModelDriver driver;
    ASSERT_EQ(driver.init(config), "") << config.name;
    for (uint64_t i = 1; i <= ops; ++i) {
      std::string err = driver.step(choices);
      if (err.empty() && i % kFullCheckEvery == 0)
        err = driver.checkAll();
      ASSERT_EQ(err, "") << config.name << ", operation " << i;
    }
    ASSERT_EQ(driver.checkAll(), "") << config.name;
    EXPECT_GT(driver.counts().append, 0u);
    EXPECT_GT(driver.counts().reserved, 0u);
    ASSERT_EQ(driver.finish(), "") << config.name;
  }
}
