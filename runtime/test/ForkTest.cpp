//===- ForkTest.cpp - Prefix sharing and copy-on-write --------------------===//

#include "TestUtil.h"

#include <cstring>

using namespace kvc::rt::testing;

namespace {
constexpr uint32_t H = 2, D = 64, N = 512;

struct Fixture {
  ModelConfig m = simpleConfig(kivi2(32), KVC_RT_BACKEND_CPU);
  std::vector<float> keys = randomTokens(H, N, D, 61);
  std::vector<float> values = randomTokens(H, N, D, 62);
  std::vector<float> keys2 = randomTokens(H, N, D, 63);
  std::vector<float> values2 = randomTokens(H, N, D, 64);
};

std::vector<float> gatherAll(kvc_rt_cache *cache, kvc_rt_seq seq) {
  uint64_t n = 0;
  EXPECT_EQ(kvc_rt_sequence_length(cache, seq, 0, &n), KVC_RT_OK);
  std::vector<float> out(2 * H * n * D);
  for (uint32_t h = 0; h < H; ++h)
    EXPECT_EQ(kvc_rt_gather(cache, seq, 0, h, out.data() + 2 * h * n * D,
                            out.data() + (2 * h + 1) * n * D, n),
              KVC_RT_OK);
  return out;
}

kvc_rt_layer_stats stats(kvc_rt_cache *cache) {
  kvc_rt_layer_stats s{};
  EXPECT_EQ(kvc_rt_layer_stats_get(cache, 0, &s), KVC_RT_OK);
  return s;
}

std::vector<int32_t> pages(kvc_rt_cache *cache, kvc_rt_seq seq) {
  kvc_rt_sequence_view v;
  EXPECT_EQ(kvc_rt_sequence_view_get(cache, seq, 0, &v), KVC_RT_OK);
  return std::vector<int32_t>(v.page_table, v.page_table + v.num_pages);
}

void append(kvc_rt_cache *cache, kvc_rt_seq seq,
            const std::vector<float> &k, const std::vector<float> &v,
            uint32_t first, uint32_t count) {
  kvc_rt_tokens t = sliceTokens(k, v, H, N, D, first, count);
  ASSERT_EQ(kvc_rt_append(cache, seq, 0, &t), KVC_RT_OK)
      << kvc_rt_last_error();
}
} // namespace

class RuntimeFork : public ::testing::TestWithParam<uint32_t> {};

TEST_P(RuntimeFork, SharesPagesAndCopiesOnWrite) {
  Fixture f;
  f.m.config.backend = GetParam();
  CacheHolder cache(f.m);
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq parent, child;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &parent));
  // 100 tokens with R = 32, T = 64: 96 compressed (page 0 full, page 1
  // holding 32), 4 residual.
  append(cache, parent, f.keys, f.values, 0, 100);
  EXPECT_EQ(pages(cache, parent).size(), 2u);
  const std::vector<float> prefix = gatherAll(cache, parent);

  ASSERT_RT_OK(kvc_rt_sequence_fork(cache, parent, &child));
  EXPECT_EQ(stats(cache).pages_used, 2u) << "a fork copies no page";
  EXPECT_EQ(stats(cache).pages_shared, 2u);
  EXPECT_EQ(pages(cache, child), pages(cache, parent));
  EXPECT_EQ(gatherAll(cache, child), prefix);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));

  // Decode steps that stay in the residual window touch no page.
  append(cache, child, f.keys2, f.values2, 100, 20);
  EXPECT_EQ(stats(cache).pages_used, 2u);
  EXPECT_EQ(pages(cache, child), pages(cache, parent));

  // The flush at 128 writes into shared page 1: copy-on-write.
  const std::vector<int32_t> shared = pages(cache, parent);
  append(cache, child, f.keys2, f.values2, 120, 8);
  const std::vector<int32_t> childPages = pages(cache, child);
  ASSERT_EQ(childPages.size(), 2u);
  EXPECT_EQ(childPages[0], shared[0]) << "full pages stay shared";
  EXPECT_NE(childPages[1], shared[1]) << "the partial page was copied";
  EXPECT_EQ(stats(cache).pages_used, 3u);
  EXPECT_EQ(stats(cache).pages_shared, 1u);
  EXPECT_EQ(gatherAll(cache, parent), prefix) << "the parent is untouched";
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));

  // The parent now owns page 1 alone and writes into it in place.
  append(cache, parent, f.keys, f.values, 100, 28);
  EXPECT_EQ(pages(cache, parent), shared);
  EXPECT_EQ(stats(cache).pages_used, 3u);

  // Each reads its own continuation after the shared prefix.
  std::vector<float> k(128 * D), v(128 * D);
  ASSERT_RT_OK(kvc_rt_gather(cache, child, 0, 1, k.data(), v.data(), 128));
  std::vector<float> kp(128 * D), vp(128 * D);
  ASSERT_RT_OK(kvc_rt_gather(cache, parent, 0, 1, kp.data(), vp.data(), 128));
  EXPECT_EQ(std::memcmp(k.data(), kp.data(), 64 * D * 4), 0)
      << "tokens 0..63 are the same page";
  EXPECT_NE(std::memcmp(k.data() + 100 * D, kp.data() + 100 * D, 28 * D * 4),
            0);

  // Freeing the parent keeps the child's pages alive.
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, parent));
  EXPECT_EQ(stats(cache).pages_used, 2u);
  EXPECT_EQ(stats(cache).pages_shared, 0u);
  std::vector<float> k2(128 * D), v2(128 * D);
  ASSERT_RT_OK(kvc_rt_gather(cache, child, 0, 1, k2.data(), v2.data(), 128));
  EXPECT_EQ(k, k2);
  EXPECT_EQ(v, v2);
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, child));
  EXPECT_EQ(stats(cache).pages_used, 0u);
  EXPECT_EQ(stats(cache).pages_free, f.m.config.pages_per_layer);
}

TEST_P(RuntimeFork, ForkTreesAndResidualCopies) {
  Fixture f;
  f.m.config.backend = GetParam();
  f.m.config.max_sequences = 8;
  CacheHolder cache(f.m);
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq root, a, b, c;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &root));
  ASSERT_RT_OK(kvc_rt_sequence_fork(cache, root, &a)); // fork of empty
  append(cache, root, f.keys, f.values, 0, 70);
  append(cache, a, f.keys2, f.values2, 0, 5);
  ASSERT_RT_OK(kvc_rt_sequence_fork(cache, root, &b));
  ASSERT_RT_OK(kvc_rt_sequence_fork(cache, b, &c)); // grandchild
  EXPECT_EQ(stats(cache).pages_used, 1u); // 64 compressed tokens, shared
  EXPECT_EQ(stats(cache).pages_shared, 1u);
  // The residual rows (tokens 64..69) were copied, not shared: appending to
  // b must not change what c reads.
  const std::vector<float> cBefore = gatherAll(cache, c);
  append(cache, b, f.keys2, f.values2, 70, 10);
  EXPECT_EQ(gatherAll(cache, c), cBefore);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));
  // Both flush into the shared page: one copy each while it is shared.
  append(cache, b, f.keys2, f.values2, 80, 16);
  append(cache, c, f.keys, f.values, 70, 26);
  append(cache, root, f.keys, f.values, 70, 26);
  EXPECT_EQ(gatherAll(cache, root), gatherAll(cache, c))
      << "same tokens, different pages";
  EXPECT_NE(pages(cache, root)[1], pages(cache, c)[1]);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));
  // Four sequences, page 0 shared by root/b/c, page 1 private each: 1 + 3.
  EXPECT_EQ(stats(cache).pages_used, 4u);
  EXPECT_EQ(stats(cache).pages_shared, 1u);
  for (kvc_rt_seq s : {root, a, b, c})
    ASSERT_RT_OK(kvc_rt_sequence_free(cache, s));
  EXPECT_EQ(stats(cache).pages_used, 0u);
}

TEST_P(RuntimeFork, CopyOnWriteNeedsAFreePage) {
  Fixture f;
  f.m.config.backend = GetParam();
  f.m.config.pages_per_layer = 2;
  CacheHolder cache(f.m);
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq parent, child;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &parent));
  append(cache, parent, f.keys, f.values, 0, 100); // pages 0 and 1
  ASSERT_RT_OK(kvc_rt_sequence_fork(cache, parent, &child));
  // The flush into the shared partial page needs one page for the copy.
  kvc_rt_tokens t = sliceTokens(f.keys, f.values, H, N, D, 100, 28);
  EXPECT_RT(KVC_RT_ERROR_OUT_OF_MEMORY, kvc_rt_append(cache, child, 0, &t));
  EXPECT_EQ(stats(cache).pages_shared, 2u);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));
  // Once the parent is gone the child owns the page and writes in place.
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, parent));
  ASSERT_RT_OK(kvc_rt_append(cache, child, 0, &t));
  EXPECT_EQ(stats(cache).pages_used, 2u);
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, child));
}

INSTANTIATE_TEST_SUITE_P(Backends, RuntimeFork,
                         ::testing::Values(uint32_t(KVC_RT_BACKEND_CPU),
                                           uint32_t(KVC_RT_BACKEND_CPU_STAGED)));
