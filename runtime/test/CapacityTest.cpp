//===- CapacityTest.cpp - Footprint, capacity planning and stats ----------===//

#include "TestUtil.h"

#include "kvc/Numerics/Layout.h"

#include <cstring>

using namespace kvc::rt::testing;
namespace num = kvc::numerics;

namespace {
/// Two layers with different (decoupled) encodings and residual windows.
ModelConfig twoLayerConfig() {
  ModelConfig m;
  kvc_rt_config_init(&m.config);
  m.config.num_layers = 2;
  m.config.kv_heads = 2;
  m.config.head_dim = 64;
  m.config.page_tokens = 64;
  m.encodings = {kivi2(128),
                 makeEncoding(fp8Side(KVC_RT_FP8_E4M3),
                              quantSide(4, KVC_RT_AXIS_TOKEN, 64), 32)};
  return m;
}
} // namespace

TEST(RuntimeCapacity, FootprintIsWhatTheCacheReserves) {
  ModelConfig m = twoLayerConfig();
  m.config.max_sequences = 3;
  m.config.max_tokens = 300;
  m.config.pages_per_layer = 10;
  const kvc_rt_cache_config c = m.get();
  kvc_rt_footprint f;
  ASSERT_RT_OK(kvc_rt_config_footprint(&c, &f));
  // Pools: pages * heads * block bytes, per side and layer (layout.md 4).
  const size_t kivi = (64 * 64 * 2 / 8 + 2 * 64 * 4) + (64 * 64 * 2 / 8 + 64 * 2 * 4);
  const size_t fp8 = 64 * 64 + 64 * 2;
  const size_t q4 = 64 * 64 * 4 / 8 + 64 * 1 * 4;
  EXPECT_EQ(f.pool_bytes, 10u * 2 * (kivi + fp8 + q4));
  // Staging: sequences * heads * [R][D] fp16, both sides.
  EXPECT_EQ(f.staging_bytes,
            3u * 2 * 2 *
                (num::residualStagingBytes(128, 64) +
                 num::residualStagingBytes(32, 64)));
  EXPECT_GE(f.backend_bytes, f.pool_bytes + f.staging_bytes);
  EXPECT_LT(f.backend_bytes, f.pool_bytes + f.staging_bytes + 8 * 256);
  EXPECT_GT(f.host_metadata_bytes, 0u);

  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  kvc_rt_cache_stats s;
  ASSERT_RT_OK(kvc_rt_cache_stats_get(cache, &s));
  EXPECT_EQ(std::memcmp(&s.footprint, &f, sizeof(f)), 0);
  EXPECT_EQ(s.pages_free, 20u);
  EXPECT_EQ(s.max_sequences, 3u);

  // Device backends add the page-table mirror to the arena.
  kvc_rt_cache_config staged = c;
  staged.backend = KVC_RT_BACKEND_CPU_STAGED;
  kvc_rt_footprint fs;
  ASSERT_RT_OK(kvc_rt_config_footprint(&staged, &fs));
  EXPECT_GE(fs.backend_bytes, f.backend_bytes + 2 * 3 * 5 * 4);
  EXPECT_EQ(fs.pool_bytes, f.pool_bytes);
}

TEST(RuntimeCapacity, StatsPerLayerFollowEachEncoding) {
  ModelConfig m = twoLayerConfig();
  m.config.max_sequences = 4;
  m.config.max_tokens = 300;
  m.config.pages_per_layer = 16;
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  const std::vector<float> x = randomTokens(2, 300, 64, 9);
  kvc_rt_seq a, b;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &a));
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &b));
  for (uint32_t l = 0; l < 2; ++l) {
    kvc_rt_tokens t = sliceTokens(x, x, 2, 300, 64, 0, 300);
    ASSERT_RT_OK(kvc_rt_append(cache, a, l, &t));
  }
  kvc_rt_tokens t = sliceTokens(x, x, 2, 300, 64, 0, 40);
  ASSERT_RT_OK(kvc_rt_append(cache, b, 1, &t));
  kvc_rt_layer_view v0, v1;
  ASSERT_RT_OK(kvc_rt_layer_view_get(cache, 0, &v0));
  ASSERT_RT_OK(kvc_rt_layer_view_get(cache, 1, &v1));
  kvc_rt_layer_stats s0, s1;
  ASSERT_RT_OK(kvc_rt_layer_stats_get(cache, 0, &s0));
  ASSERT_RT_OK(kvc_rt_layer_stats_get(cache, 1, &s1));
  // Layer 0 (R = 128): 256 of 300 compressed = 4 pages. Layer 1 (R = 32):
  // 288 -> 5 pages, plus 32 of b's 40 -> 1 page.
  EXPECT_EQ(s0.pages_used, 4u);
  EXPECT_EQ(s1.pages_used, 6u);
  EXPECT_EQ(s0.k_page_bytes_used, 4 * v0.k.page_bytes);
  EXPECT_EQ(s0.v_page_bytes_used, 4 * v0.v.page_bytes);
  EXPECT_NE(v0.k.page_bytes, v1.k.page_bytes) << "decoupled: sizes differ";
  EXPECT_NE(v1.k.page_bytes, v1.v.page_bytes);
  EXPECT_EQ(s1.v_page_bytes_used, 6 * v1.v.page_bytes);
  EXPECT_EQ(s0.k_residual_bytes, 2u * 2 * num::residualStagingBytes(128, 64));
  EXPECT_EQ(s1.tokens, 340u);
  EXPECT_EQ(s1.compressed_tokens, 288u + 32u);
  EXPECT_EQ(s0.tokens, 300u);
  kvc_rt_cache_stats cs;
  ASSERT_RT_OK(kvc_rt_cache_stats_get(cache, &cs));
  EXPECT_EQ(cs.live_sequences, 2u);
  EXPECT_EQ(cs.pages_used, 10u);
  EXPECT_EQ(cs.pages_free, 22u);
  EXPECT_EQ(cs.k_bytes_used, s0.k_page_bytes_used + s0.k_residual_bytes +
                                 s1.k_page_bytes_used + s1.k_residual_bytes);
}

TEST(RuntimeCapacity, PlannedSequencesFitExactly) {
  ModelConfig m = twoLayerConfig();
  const kvc_rt_cache_config c = m.get();
  const uint32_t N = 500;
  const uint64_t budget = 6u << 20;
  kvc_rt_capacity_plan plan;
  ASSERT_RT_OK(kvc_rt_plan_capacity(&c, budget, N, &plan));
  // Layer 1 needs the most pages: c(500) = 480 with R = 32 -> 8 pages.
  EXPECT_EQ(plan.pages_per_sequence, 8u);
  ASSERT_GT(plan.max_sequences, 2u);
  EXPECT_EQ(plan.pages_per_layer, plan.max_sequences * 8);
  EXPECT_LE(plan.footprint.backend_bytes, budget);
  kvc_rt_cache_config oneMore = c;
  oneMore.max_sequences = plan.max_sequences + 1;
  oneMore.max_tokens = N;
  oneMore.pages_per_layer = (plan.max_sequences + 1) * 8;
  kvc_rt_footprint tooBig;
  ASSERT_RT_OK(kvc_rt_config_footprint(&oneMore, &tooBig));
  EXPECT_GT(tooBig.backend_bytes, budget) << "one more sequence must not fit";

  ModelConfig sized = m;
  sized.config.max_sequences = plan.max_sequences;
  sized.config.max_tokens = N;
  sized.config.pages_per_layer = plan.pages_per_layer;
  const kvc_rt_cache_config sc = sized.get();
  kvc_rt_footprint f;
  ASSERT_RT_OK(kvc_rt_config_footprint(&sc, &f));
  EXPECT_EQ(std::memcmp(&f, &plan.footprint, sizeof(f)), 0);

  CacheHolder cache(sized);
  ASSERT_RT_OK(cache.status());
  const std::vector<float> x = randomTokens(2, N, 64, 10);
  std::vector<kvc_rt_seq> seqs(plan.max_sequences);
  for (kvc_rt_seq &s : seqs) {
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &s));
    for (uint32_t l = 0; l < 2; ++l) {
      kvc_rt_tokens t = sliceTokens(x, x, 2, N, 64, 0, N);
      ASSERT_RT_OK(kvc_rt_append(cache, s, l, &t));
    }
  }
  kvc_rt_layer_stats s1;
  ASSERT_RT_OK(kvc_rt_layer_stats_get(cache, 1, &s1));
  EXPECT_EQ(s1.pages_free, 0u);

  // A smaller budget plans fewer sequences; a tiny one none.
  kvc_rt_capacity_plan smaller;
  ASSERT_RT_OK(kvc_rt_plan_capacity(&c, plan.footprint.backend_bytes - 1, N,
                                    &smaller));
  EXPECT_EQ(smaller.max_sequences, plan.max_sequences - 1);
  ASSERT_RT_OK(kvc_rt_plan_capacity(&c, 1000, N, &smaller));
  EXPECT_EQ(smaller.max_sequences, 0u);
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_plan_capacity(&c, budget, 0, &smaller));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_plan_capacity(&c, budget, N, nullptr));
}

TEST(RuntimeCapacity, MetadataIsUnderOnePercentAt64TokenPages) {
  // Llama-3-8B-like: 32 layers, 8 kv heads of 128, KIVI-2 with R = 128.
  ModelConfig m;
  kvc_rt_config_init(&m.config);
  m.config.backend = KVC_RT_BACKEND_CPU_STAGED; // count the mirror too
  m.config.num_layers = 32;
  m.config.kv_heads = 8;
  m.config.head_dim = 128;
  m.config.page_tokens = 64;
  m.encodings.assign(32, kivi2(128));
  const kvc_rt_cache_config c = m.get();
  kvc_rt_capacity_plan plan;
  ASSERT_RT_OK(kvc_rt_plan_capacity(&c, uint64_t(16) << 30, 8192, &plan));
  ASSERT_GT(plan.max_sequences, 0u);
  const kvc_rt_footprint &f = plan.footprint;
  const double metadata =
      double(f.host_metadata_bytes + f.backend_bytes - f.pool_bytes -
             f.staging_bytes);
  EXPECT_LT(metadata / double(f.pool_bytes), 0.01)
      << "metadata " << metadata << " bytes for " << f.pool_bytes
      << " bytes of pages";
}
