//===- DemoteTest.cpp - Two-tier eviction: evicted tokens kept cheaper ----===//
//
// kvc_rt_evict_demote keeps the tokens a policy evicts at a cheaper
// per-token encoding. These tests check that a demoted row is exactly the
// numerics library's encoding of the row readers saw before the eviction,
// that live rows and released pages behave as with dropping eviction, that
// fork and free carry the demoted pages, and that every error leaves the
// cache unchanged.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"
#include "kvc_runtime_binding.h"
#include "kvc/Numerics/Layout.h"

#include <cmath>
#include <cstring>

using namespace kvc::rt::testing;
namespace num = kvc::numerics;

namespace {
constexpr uint32_t H = 2, D = 64, N = 400, T = 64;

kvc_rt_encoding primary() {
  return makeEncoding(quantSide(4, KVC_RT_AXIS_CHANNEL, 32),
                      quantSide(4, KVC_RT_AXIS_TOKEN, 32), 64);
}

kvc_rt_encoding demoteQ2() {
  return makeEncoding(quantSide(2, KVC_RT_AXIS_TOKEN, 32),
                      quantSide(2, KVC_RT_AXIS_TOKEN, 32), 0);
}

/// `row` through q2 token-axis groups of 32, the way the numerics library
/// stores one token.
std::vector<float> q2RoundTrip(const float *row) {
  const num::SideEncoding side =
      num::SideEncoding::quantized(2, num::QuantAxis::Token, 32);
  const num::BlockLayout layout = num::computeBlockLayout(side, D, T);
  std::vector<uint8_t> block(layout.blockBytes, 0);
  std::vector<float> out(D);
  num::writePageTokens(row, 5, 1, side, D, T, block.data());
  num::readPageTokens(block.data(), 5, 1, side, D, T, out.data());
  return out;
}

struct Demoting : ::testing::Test {
  std::vector<float> keys = randomTokens(H, N, D, 31);
  std::vector<float> values = randomTokens(H, N, D, 32);
  ModelConfig config(uint32_t backend = KVC_RT_BACKEND_CPU) {
    ModelConfig m = simpleConfig(primary(), backend);
    m.config.page_tokens = T;
    return m;
  }
  void append(kvc_rt_cache *cache, kvc_rt_seq seq, uint32_t first,
              uint32_t count) {
    kvc_rt_tokens t = sliceTokens(keys, values, H, N, D, first, count);
    ASSERT_RT_OK(kvc_rt_append(cache, seq, 0, &t));
  }
  /// [H][n][D] keys and values as kvc_rt_gather returns them.
  void gather(kvc_rt_cache *cache, kvc_rt_seq seq, uint64_t n,
              std::vector<float> &k, std::vector<float> &v) {
    k.assign(size_t{H} * n * D, 0.0f);
    v.assign(size_t{H} * n * D, 0.0f);
    for (uint32_t h = 0; h < H; ++h)
      ASSERT_RT_OK(kvc_rt_gather(cache, seq, 0, h, k.data() + h * n * D,
                                 v.data() + h * n * D, n));
  }
  std::vector<uint8_t> live(kvc_rt_cache *cache, kvc_rt_seq seq,
                            uint32_t h, uint64_t n) {
    std::vector<uint8_t> out(n);
    EXPECT_EQ(kvc_rt_live_tokens(cache, seq, 0, h, out.data(), n), KVC_RT_OK);
    return out;
  }
  kvc_rt_layer_stats stats(kvc_rt_cache *cache) {
    kvc_rt_layer_stats s{};
    EXPECT_EQ(kvc_rt_layer_stats_get(cache, 0, &s), KVC_RT_OK);
    return s;
  }
};

/// Live rows unchanged, evicted rows the q2 encoding of their previous
/// rows (for keys per channel from a 4-bit page, or fp16 staging).
void expectDemoted(const std::vector<float> &before,
                   const std::vector<float> &after,
                   const std::vector<std::vector<uint8_t>> &liveSets,
                   uint64_t n, const char *side) {
  for (uint32_t h = 0; h < H; ++h)
    for (uint64_t t = 0; t < n; ++t) {
      const float *was = before.data() + (h * n + t) * D;
      const float *now = after.data() + (h * n + t) * D;
      if (liveSets[h][t]) {
        ASSERT_EQ(std::memcmp(was, now, D * 4), 0)
            << side << " live head " << h << " token " << t;
        continue;
      }
      const std::vector<float> want = q2RoundTrip(was);
      ASSERT_EQ(std::memcmp(want.data(), now, D * 4), 0)
          << side << " demoted head " << h << " token " << t;
      ASSERT_FALSE(std::isnan(now[0]));
    }
}
} // namespace

TEST_F(Demoting, DemotedRowsAreTheCheaperEncodingOfWhatReadersSaw) {
  CacheHolder cache(config());
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  append(cache, seq, 0, 300); // 256 compressed, 44 staged
  std::vector<float> k0, v0;
  gather(cache, seq, 300, k0, v0);
  const uint32_t pagesBefore = stats(cache).pages_used;

  // Tokens 64..191 score 0: pages 1 and 2 lose every token in both heads.
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> uniform(0.5f, 1.0f);
  std::vector<float> scores(size_t{H} * 300);
  for (size_t i = 0; i < scores.size(); ++i)
    scores[i] = (i % 300 >= 64 && i % 300 < 192) ? 0.0f : uniform(rng);
  const kvc_rt_evict_policy h2o = {KVC_RT_EVICT_H2O, 4, 16, 100};
  const kvc_rt_encoding q2 = demoteQ2();
  ASSERT_RT_OK(kvc_rt_evict_demote(cache, seq, 0, &h2o, nullptr, &q2,
                                   scores.data(), 300));

  std::vector<std::vector<uint8_t>> liveSets;
  for (uint32_t h = 0; h < H; ++h) {
    liveSets.push_back(live(cache, seq, h, 300));
    EXPECT_EQ(std::count(liveSets[h].begin(), liveSets[h].end(), 1), 100);
  }
  // Evicted staged tokens (>= 256) are demoted too: some exist.
  EXPECT_LT(std::count(liveSets[0].begin() + 256, liveSets[0].end(), 1), 44);
  std::vector<float> k1, v1;
  gather(cache, seq, 300, k1, v1);
  expectDemoted(k0, k1, liveSets, 300, "key");
  expectDemoted(v0, v1, liveSets, 300, "value");

  const kvc_rt_layer_stats s = stats(cache);
  EXPECT_EQ(s.tokens_evicted, uint64_t(H) * 200);
  EXPECT_EQ(s.tokens_demoted, s.tokens_evicted);
  EXPECT_EQ(s.pages_used, pagesBefore - 2); // pages 1 and 2 released
  kvc_rt_sequence_view view;
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, seq, 0, &view));
  ASSERT_NE(view.demoted_pages, nullptr);
  EXPECT_EQ(view.page_table[1], KVC_RT_PAGE_HOLE);
  // Every position page holds an evicted token: 5 demoted pages.
  uint32_t held = 0;
  for (uint32_t p = 0; p < 5; ++p)
    held += view.demoted_pages[p] != nullptr;
  EXPECT_EQ(held, 5u);
  EXPECT_EQ(view.demoted_pages[5], nullptr);
  EXPECT_EQ(std::memcmp(&view.demote.key, &q2.key, sizeof(q2.key)), 0);
  EXPECT_GT(s.demoted_bytes, 0u);
  kvc_rt_cache_stats all{};
  ASSERT_RT_OK(kvc_rt_cache_stats_get(cache, &all));
  EXPECT_EQ(all.demoted_bytes, s.demoted_bytes);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));

  // More tokens, another eviction: earlier demoted rows stay as they were.
  append(cache, seq, 300, 100);
  std::vector<float> k2, v2;
  gather(cache, seq, 400, k2, v2);
  scores.assign(size_t{H} * 400, 0.25f);
  ASSERT_RT_OK(kvc_rt_evict_demote(cache, seq, 0, &h2o, nullptr, &q2,
                                   scores.data(), 400));
  std::vector<std::vector<uint8_t>> liveAfter;
  for (uint32_t h = 0; h < H; ++h)
    liveAfter.push_back(live(cache, seq, h, 400));
  std::vector<float> k3, v3;
  gather(cache, seq, 400, k3, v3);
  for (uint32_t h = 0; h < H; ++h)
    for (uint64_t t = 0; t < 400; ++t) {
      const size_t at = (h * 400 + t) * D;
      const bool newlyEvicted = t < 300 ? liveSets[h][t] && !liveAfter[h][t]
                                        : !liveAfter[h][t];
      if (newlyEvicted) {
        ASSERT_EQ(std::memcmp(q2RoundTrip(&k2[at]).data(), &k3[at], D * 4), 0)
            << "token " << t;
      } else {
        ASSERT_EQ(std::memcmp(&k2[at], &k3[at], D * 4), 0) << "token " << t;
      }
    }
  EXPECT_EQ(stats(cache).tokens_demoted, uint64_t(H) * 300);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));
  // Equal scores keep the latest tokens: 300..303 go, into page 4. Each
  // demoted page holds H K blocks and H V blocks of q2 token-axis rows.
  const uint64_t demotedBytes = stats(cache).demoted_bytes;
  const num::BlockLayout q2Block = num::computeBlockLayout(
      num::SideEncoding::quantized(2, num::QuantAxis::Token, 32), D, T);
  EXPECT_EQ(demotedBytes, 5 * uint64_t(H) * 2 * q2Block.blockBytes);

  // Fork copies the demoted rows; freeing either leaves the other intact.
  kvc_rt_seq child;
  ASSERT_RT_OK(kvc_rt_sequence_fork(cache, seq, &child));
  EXPECT_EQ(stats(cache).demoted_bytes, 2 * demotedBytes);
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, seq));
  std::vector<float> k4, v4;
  gather(cache, child, 400, k4, v4);
  EXPECT_EQ(std::memcmp(k3.data(), k4.data(), k3.size() * 4), 0);
  EXPECT_EQ(std::memcmp(v3.data(), v4.data(), v3.size() * 4), 0);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, child));
  EXPECT_EQ(stats(cache).tokens_demoted, 0u);
  EXPECT_EQ(stats(cache).demoted_bytes, 0u);
}

TEST_F(Demoting, BadDemotionsChangeNothing) {
  CacheHolder cache(config());
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seq, dropped;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &dropped));
  append(cache, seq, 0, 200);
  append(cache, dropped, 0, 200);
  std::vector<float> scores(size_t{H} * 200, 1.0f);
  const kvc_rt_evict_policy h2o = {KVC_RT_EVICT_H2O, 4, 16, 100};
  const kvc_rt_encoding q2 = demoteQ2();

  // A channel-axis demotion cannot hold a token alone.
  const kvc_rt_encoding channel =
      makeEncoding(quantSide(2, KVC_RT_AXIS_CHANNEL, 32),
                   quantSide(2, KVC_RT_AXIS_TOKEN, 32), 0);
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_evict_demote(cache, seq, 0, &h2o, nullptr, &channel,
                                scores.data(), 200));
  EXPECT_NE(std::string(kvc_rt_last_error()).find("channel axis"),
            std::string::npos)
      << kvc_rt_last_error();
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_evict_demote(cache, seq, 0, &h2o, nullptr, nullptr,
                                scores.data(), 200));
  EXPECT_EQ(stats(cache).tokens_evicted, 0u);

  // Once a sequence drops tokens it cannot start demoting, and the reverse.
  ASSERT_RT_OK(kvc_rt_evict(cache, dropped, 0, &h2o, scores.data(), 200));
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_evict_demote(cache, dropped, 0, &h2o, nullptr, &q2,
                                scores.data(), 200));
  ASSERT_RT_OK(kvc_rt_evict_demote(cache, seq, 0, &h2o, nullptr, &q2,
                                   scores.data(), 200));
  const kvc_rt_layer_stats s = stats(cache);
  const kvc_rt_evict_policy tighter = {KVC_RT_EVICT_H2O, 4, 16, 50};
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_evict(cache, seq, 0, &tighter, scores.data(), 200));
  // The demotion encoding is fixed by the first demoting eviction.
  const kvc_rt_encoding fp8 = makeEncoding(fp8Side(KVC_RT_FP8_E4M3),
                                           fp8Side(KVC_RT_FP8_E4M3), 0);
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_evict_demote(cache, seq, 0, &tighter, nullptr, &fp8,
                                scores.data(), 200));
  EXPECT_EQ(stats(cache).tokens_evicted, s.tokens_evicted);
  EXPECT_EQ(stats(cache).demoted_bytes, s.demoted_bytes);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));

  // Device-style backends: the demoted pages would be host memory.
  CacheHolder staged(config(KVC_RT_BACKEND_CPU_STAGED));
  ASSERT_RT_OK(staged.status());
  kvc_rt_seq other;
  ASSERT_RT_OK(kvc_rt_sequence_create(staged, &other));
  append(staged, other, 0, 200);
  EXPECT_RT(KVC_RT_ERROR_UNSUPPORTED,
            kvc_rt_evict_demote(staged, other, 0, &h2o, nullptr, &q2,
                                scores.data(), 200));
}

TEST_F(Demoting, Fp8AndPerHeadBudgets) {
  CacheHolder cache(config());
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  append(cache, seq, 0, 256);
  std::vector<float> k0, v0;
  gather(cache, seq, 256, k0, v0);
  std::vector<float> scores = randomTokens(1, 1, H * 256, 9);
  for (float &x : scores)
    x = std::fabs(x);
  const kvc_rt_evict_policy h2o = {KVC_RT_EVICT_H2O, 4, 16, 128};
  const uint32_t budgets[H] = {128, 40};
  const kvc_rt_encoding fp8 = makeEncoding(fp8Side(KVC_RT_FP8_E4M3),
                                           fp8Side(KVC_RT_FP8_E5M2), 0);
  ASSERT_RT_OK(kvc_rt_evict_demote(cache, seq, 0, &h2o, budgets, &fp8,
                                   scores.data(), 256));
  std::vector<float> k1, v1;
  gather(cache, seq, 256, k1, v1);
  const num::SideEncoding e4m3 =
      num::SideEncoding::fp8Format(num::FP8Format::E4M3);
  const num::BlockLayout layout = num::computeBlockLayout(e4m3, D, T);
  for (uint32_t h = 0; h < H; ++h) {
    const std::vector<uint8_t> liveSet = live(cache, seq, h, 256);
    EXPECT_EQ(std::count(liveSet.begin(), liveSet.end(), 1),
              int64_t(budgets[h]));
    for (uint64_t t = 0; t < 256; ++t) {
      if (liveSet[t])
        continue;
      std::vector<uint8_t> block(layout.blockBytes, 0);
      std::vector<float> want(D);
      num::writePageTokens(&k0[(h * 256 + t) * D], 0, 1, e4m3, D, T,
                           block.data());
      num::readPageTokens(block.data(), 0, 1, e4m3, D, T, want.data());
      ASSERT_EQ(std::memcmp(want.data(), &k1[(h * 256 + t) * D], D * 4), 0)
          << "head " << h << " token " << t;
    }
  }
  EXPECT_EQ(stats(cache).tokens_demoted, uint64_t(256 - 128 + 256 - 40));
}

// The entry points compiled code calls: the batch's evictions with the
// demotion encodings as descriptors, and the demoted-page table per entry,
// refused when the sequence demotes to other encodings than compiled.
TEST_F(Demoting, BindingEvictsWithDemotionAndHandsOutThePages) {
  CacheHolder cache(config());
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seqs[2], mirror;
  for (kvc_rt_seq &seq : seqs) {
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
    append(cache, seq, 0, 200);
  }
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &mirror));
  append(cache, mirror, 0, 200);
  // Scores [2][H][200], contiguous; budgets one per KV head.
  std::vector<float> scores = randomTokens(1, 1, 2 * H * 200, 5);
  kvc_rt_memref_3d_f32 desc = {scores.data(), scores.data(), 0,
                               {2, H, 200}, {H * 200, 200, 1}};
  int64_t budgets[H] = {64, 32};
  kvc_rt_memref_1d_i64 budgetDesc = {budgets, budgets, 0, {H}, {1}};
  const kvc_rt_encoding q2 = demoteQ2();
  const int64_t keyDescriptor = kvc_rt_pack_side_encoding(&q2.key);
  const int64_t valueDescriptor = kvc_rt_pack_side_encoding(&q2.value);

  kvc_rt_binding *binding = nullptr;
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, seqs, 2, &binding));
  EXPECT_EQ(kvc_rt_mlir_demoted_pages(binding, 0, keyDescriptor,
                                      valueDescriptor),
            nullptr); // nothing demoted yet
  _mlir_ciface_kvc_rt_mlir_evict_demote(binding, &desc, KVC_RT_EVICT_H2O, 4,
                                        16, &budgetDesc, keyDescriptor,
                                        valueDescriptor);
  ASSERT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK)
      << kvc_rt_binding_error(binding);

  // The same as kvc_rt_evict_demote on a copy of entry 1.
  const kvc_rt_evict_policy h2o = {KVC_RT_EVICT_H2O, 4, 16, 64};
  const uint32_t headBudgets[H] = {64, 32};
  ASSERT_RT_OK(kvc_rt_evict_demote(cache, mirror, 0, &h2o, headBudgets, &q2,
                                   scores.data() + H * 200, 200));
  std::vector<float> k1, v1, km, vm;
  gather(cache, seqs[1], 200, k1, v1);
  gather(cache, mirror, 200, km, vm);
  EXPECT_EQ(std::memcmp(k1.data(), km.data(), k1.size() * 4), 0);
  EXPECT_EQ(std::memcmp(v1.data(), vm.data(), v1.size() * 4), 0);
  for (uint32_t h = 0; h < H; ++h)
    EXPECT_EQ(live(cache, seqs[1], h, 200), live(cache, mirror, h, 200));

  kvc_rt_sequence_view view;
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, seqs[0], 0, &view));
  EXPECT_EQ(kvc_rt_mlir_demoted_pages(binding, 0, keyDescriptor,
                                      valueDescriptor),
            view.demoted_pages);
  ASSERT_NE(view.demoted_pages, nullptr);
  // Other encodings than the runtime holds: a sticky error, no pages.
  const kvc_rt_side_encoding fp8 = fp8Side(KVC_RT_FP8_E4M3);
  EXPECT_EQ(kvc_rt_mlir_demoted_pages(binding, 0,
                                      kvc_rt_pack_side_encoding(&fp8),
                                      valueDescriptor),
            nullptr);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_ENCODING_MISMATCH);
  kvc_rt_binding_destroy(binding);
}
