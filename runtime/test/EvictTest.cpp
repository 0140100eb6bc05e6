//===- EvictTest.cpp - Token eviction: bitmaps, holes, errors -------------===//
//
// kvc_rt_evict / kvc_rt_live_tokens and the binding's eviction entry points.
// Which tokens a policy keeps is kvc::numerics::selectKeptTokens; these
// tests check that the runtime keeps exactly that, releases the pages left
// without a live token (holes), copies nothing, and leaves the state
// unchanged on every error. The randomized model test (ModelDriver) mixes
// evictions with every other operation.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"
#include "kvc/Numerics/Evict.h"
#include "kvc_runtime_binding.h"

#include <cmath>
#include <cstring>
#include <limits>

using namespace kvc::rt::testing;
namespace num = kvc::numerics;

namespace {
constexpr uint32_t H = 2, D = 64, N = 512, T = 64;

kvc_rt_evict_policy policyOf(uint32_t kind, uint32_t sink, uint32_t window,
                             uint32_t budget) {
  kvc_rt_evict_policy p;
  p.kind = kind;
  p.sink = sink;
  p.window = window;
  p.budget = budget;
  return p;
}

num::EvictPolicy toNumerics(const kvc_rt_evict_policy &p) {
  num::EvictPolicy out;
  out.kind = static_cast<num::EvictKind>(p.kind);
  out.sink = p.sink;
  out.window = p.window;
  out.budget = p.budget;
  return out;
}

uint64_t length(kvc_rt_cache *cache, kvc_rt_seq seq) {
  uint64_t n = 0;
  EXPECT_EQ(kvc_rt_sequence_length(cache, seq, 0, &n), KVC_RT_OK);
  return n;
}

std::vector<uint8_t> live(kvc_rt_cache *cache, kvc_rt_seq seq, uint32_t h) {
  std::vector<uint8_t> out(length(cache, seq) + 1, 7);
  EXPECT_EQ(kvc_rt_live_tokens(cache, seq, 0, h, out.data(), out.size() - 1),
            KVC_RT_OK)
      << kvc_rt_last_error();
  out.pop_back();
  return out;
}

std::vector<int32_t> pages(kvc_rt_cache *cache, kvc_rt_seq seq) {
  kvc_rt_sequence_view v;
  EXPECT_EQ(kvc_rt_sequence_view_get(cache, seq, 0, &v), KVC_RT_OK);
  return std::vector<int32_t>(v.page_table, v.page_table + v.num_pages);
}

kvc_rt_layer_stats stats(kvc_rt_cache *cache) {
  kvc_rt_layer_stats s{};
  EXPECT_EQ(kvc_rt_layer_stats_get(cache, 0, &s), KVC_RT_OK);
  return s;
}

/// Keys of head h, [n][D] (values are checked the same way by the model
/// test).
std::vector<float> gatherKeys(kvc_rt_cache *cache, kvc_rt_seq seq,
                              uint32_t h) {
  const uint64_t n = length(cache, seq);
  std::vector<float> out(n * D);
  EXPECT_EQ(kvc_rt_gather(cache, seq, 0, h, out.data(), nullptr, n),
            KVC_RT_OK);
  return out;
}

struct Evicting : ::testing::TestWithParam<uint32_t> {
  ModelConfig config(kvc_rt_encoding enc = kivi2()) {
    ModelConfig m = simpleConfig(enc, GetParam());
    m.config.page_tokens = T;
    return m;
  }
  std::vector<float> keys = randomTokens(H, N, D, 91);
  std::vector<float> values = randomTokens(H, N, D, 92);
  void append(kvc_rt_cache *cache, kvc_rt_seq seq, uint32_t first,
              uint32_t count) {
    kvc_rt_tokens t = sliceTokens(keys, values, H, N, D, first, count);
    ASSERT_EQ(kvc_rt_append(cache, seq, 0, &t), KVC_RT_OK)
        << kvc_rt_last_error();
  }
};

/// Live rows must be what they were before eviction; evicted rows NaN.
void expectLiveRowsKept(const std::vector<float> &before,
                        const std::vector<float> &after,
                        const std::vector<uint8_t> &liveSet) {
  ASSERT_EQ(after.size(), liveSet.size() * D);
  for (size_t t = 0; t < liveSet.size(); ++t)
    for (uint32_t c = 0; c < D; ++c) {
      const float got = after[t * D + c];
      if (liveSet[t])
        ASSERT_EQ(std::memcmp(&got, &before[t * D + c], 4), 0)
            << "token " << t;
      else
        ASSERT_TRUE(std::isnan(got)) << "evicted token " << t;
    }
}
} // namespace

// Streaming, H2O and SnapKV keep exactly what selectKeptTokens keeps, head
// by head, across repeated evictions interleaved with appends.
TEST_P(Evicting, SelectionIsTheNumericsSelection) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  for (uint32_t kind = 0; kind < 3; ++kind) {
    CacheHolder cache(config());
    ASSERT_RT_OK(cache.status());
    kvc_rt_seq seq;
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
    std::vector<std::vector<uint8_t>> model(H);
    const kvc_rt_evict_policy policy =
        kind == 0 ? policyOf(0, 4, 60, 64) : policyOf(kind, 4, 32, 100);
    uint32_t n = 0;
    for (uint32_t chunk : {150u, 1u, 37u, 64u, 3u, 90u}) {
      append(cache, seq, n, chunk);
      n += chunk;
      for (auto &m : model)
        m.resize(n, 1);
      std::vector<float> scores(size_t{H} * n);
      for (size_t i = 0; i < scores.size(); ++i)
        scores[i] = (i % 3 == 0) ? float(i % 5) : normal(rng); // with ties
      const std::vector<float> before0 = gatherKeys(cache, seq, 0);
      ASSERT_RT_OK(kvc_rt_evict(cache, seq, 0, &policy,
                                kind ? scores.data() : nullptr, n));
      uint64_t liveCount = 0;
      for (uint32_t h = 0; h < H; ++h) {
        liveCount += num::selectKeptTokens(
            toNumerics(policy), kind ? scores.data() + size_t{h} * n : nullptr,
            n, model[h].data());
        EXPECT_EQ(live(cache, seq, h), model[h]) << "kind " << kind << " n " << n;
      }
      expectLiveRowsKept(before0, gatherKeys(cache, seq, 0), model[0]);
      EXPECT_EQ(stats(cache).tokens_live, liveCount);
      EXPECT_EQ(stats(cache).tokens_evicted, uint64_t(H) * n - liveCount);
      EXPECT_LE(liveCount, uint64_t(H) * policy.budget);
      ASSERT_RT_OK(kvc_rt_cache_verify(cache));
    }
  }
}

TEST_P(Evicting, ReleasesPagesWithoutLiveTokensAsHoles) {
  CacheHolder cache(config());
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  append(cache, seq, 0, 300); // R = 64: 256 compressed, 4 pages
  const std::vector<int32_t> before = pages(cache, seq);
  ASSERT_EQ(before.size(), 4u);
  EXPECT_EQ(stats(cache).pages_used, 4u);
  const std::vector<float> keys0 = gatherKeys(cache, seq, 1);

  // Keeps 0..3 and 240..299: pages 1 and 2 hold no live token.
  const kvc_rt_evict_policy streaming = policyOf(0, 4, 60, 64);
  ASSERT_RT_OK(kvc_rt_evict(cache, seq, 0, &streaming, nullptr, 300));
  const std::vector<int32_t> after = pages(cache, seq);
  ASSERT_EQ(after.size(), 4u);
  EXPECT_EQ(after[0], before[0]) << "pages keep their place: nothing moves";
  EXPECT_EQ(after[1], KVC_RT_PAGE_HOLE);
  EXPECT_EQ(after[2], KVC_RT_PAGE_HOLE);
  EXPECT_EQ(after[3], before[3]);
  const kvc_rt_layer_stats s = stats(cache);
  EXPECT_EQ(s.pages_used, 2u);
  EXPECT_EQ(s.pages_free, s.pages_total - 2);
  EXPECT_EQ(s.tokens, 300u);
  EXPECT_EQ(s.tokens_live, uint64_t(H) * 64);
  EXPECT_EQ(s.tokens_evicted, uint64_t(H) * (300 - 64));
  std::vector<uint8_t> want(300, 0);
  for (uint32_t t = 0; t < 300; ++t)
    want[t] = t < 4 || t >= 240;
  EXPECT_EQ(live(cache, seq, 1), want);
  expectLiveRowsKept(keys0, gatherKeys(cache, seq, 1), want);

  kvc_rt_sequence_view view;
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, seq, 0, &view));
  ASSERT_NE(view.live_bitmap, nullptr);
  EXPECT_EQ(view.evicted_tokens, uint64_t(H) * (300 - 64));
  EXPECT_EQ(view.live_bitmap_head_bytes % 8, 0u);
  EXPECT_GE(view.live_bitmap_head_bytes * 8, uint64_t(N));
  for (uint32_t h = 0; h < H; ++h)
    for (uint32_t t = 0; t < 300; ++t)
      ASSERT_EQ(view.live_bitmap[h * view.live_bitmap_head_bytes + t / 8] >>
                        (t % 8) &
                    1,
                want[t]);

  // A released page is not readable, and neither is a hole.
  std::vector<uint8_t> block(1 << 16);
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_read_block(cache, 0, uint32_t(before[1]), 0, KVC_RT_POOL_K,
                              block.data(), block.size()));
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_read_block(cache, 0, uint32_t(KVC_RT_PAGE_HOLE), 0,
                              KVC_RT_POOL_V, block.data(), block.size()));
  EXPECT_RT(KVC_RT_OK, kvc_rt_read_block(cache, 0, uint32_t(before[0]), 0,
                                         KVC_RT_POOL_K, block.data(),
                                         block.size()));
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));

  // Freeing the sequence returns the rest; holes are not released twice.
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, seq));
  EXPECT_EQ(stats(cache).pages_used, 0u);
  EXPECT_EQ(stats(cache).tokens_evicted, 0u);
}

// Appends after an eviction continue at n; new tokens are live and read
// exactly as in a sequence that never evicted; holes stay holes.
TEST_P(Evicting, AppendAfterEvictContinuesAtN) {
  CacheHolder cache(config());
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seq, reference;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &reference));
  append(cache, seq, 0, 300);
  append(cache, reference, 0, 300);
  const kvc_rt_evict_policy streaming = policyOf(0, 4, 60, 64);
  ASSERT_RT_OK(kvc_rt_evict(cache, seq, 0, &streaming, nullptr, 300));
  append(cache, seq, 300, 100);
  append(cache, reference, 300, 100);
  EXPECT_EQ(length(cache, seq), 400u);
  const std::vector<int32_t> table = pages(cache, seq);
  ASSERT_EQ(table.size(), 6u); // c(400) = 384
  EXPECT_EQ(table[1], KVC_RT_PAGE_HOLE);
  EXPECT_EQ(table[2], KVC_RT_PAGE_HOLE);
  for (uint32_t i : {0u, 3u, 4u, 5u})
    EXPECT_NE(table[i], KVC_RT_PAGE_HOLE);
  std::vector<uint8_t> want(400, 0);
  for (uint32_t t = 0; t < 400; ++t)
    want[t] = t < 4 || t >= 240;
  for (uint32_t h = 0; h < H; ++h) {
    EXPECT_EQ(live(cache, seq, h), want);
    expectLiveRowsKept(gatherKeys(cache, reference, h),
                       gatherKeys(cache, seq, h), want);
  }
  EXPECT_EQ(stats(cache).tokens_live, uint64_t(H) * (164 + 400));
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));
}

// Tokens evicted while still staged in fp16 stay staged; a page whose whole
// position range was evicted before its flush is never allocated.
TEST_P(Evicting, StagedTokensEvictedBeforeTheirFlush) {
  // R = 128 > T = 64: 127 tokens are all staged.
  CacheHolder cache(config(makeEncoding(
      quantSide(4, KVC_RT_AXIS_CHANNEL, 64), quantSide(4, KVC_RT_AXIS_TOKEN, 64),
      128)));
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seq, reference;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &reference));
  append(cache, seq, 0, 127);
  append(cache, reference, 0, 128);
  const kvc_rt_evict_policy last = policyOf(0, 0, 1, 1);
  ASSERT_RT_OK(kvc_rt_evict(cache, seq, 0, &last, nullptr, 127));
  EXPECT_EQ(stats(cache).pages_used, 2u) << "only the reference's pages";
  std::vector<uint8_t> want(127, 0);
  want[126] = 1;
  EXPECT_EQ(live(cache, seq, 0), want);

  append(cache, seq, 127, 1); // flush: page 0 is born a hole
  const std::vector<int32_t> table = pages(cache, seq);
  ASSERT_EQ(table.size(), 2u);
  EXPECT_EQ(table[0], KVC_RT_PAGE_HOLE);
  EXPECT_NE(table[1], KVC_RT_PAGE_HOLE);
  EXPECT_EQ(stats(cache).pages_used, 3u);
  want.push_back(1);
  for (uint32_t h = 0; h < H; ++h)
    expectLiveRowsKept(gatherKeys(cache, reference, h),
                       gatherKeys(cache, seq, h), want);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));
}

// Fork shares pages and copies the bitmaps; evicting in one sequence drops
// only its references and never changes what the other reads.
TEST_P(Evicting, ForkAndEvictAreCopyOnWrite) {
  CacheHolder cache(config());
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq parent, child, grandchild;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &parent));
  append(cache, parent, 0, 300);
  const std::vector<float> parentKeys = gatherKeys(cache, parent, 0);
  ASSERT_RT_OK(kvc_rt_sequence_fork(cache, parent, &child));
  EXPECT_EQ(stats(cache).pages_shared, 4u);

  const kvc_rt_evict_policy streaming = policyOf(0, 4, 60, 64);
  ASSERT_RT_OK(kvc_rt_evict(cache, child, 0, &streaming, nullptr, 300));
  // The parent still holds pages 1 and 2: nothing is freed, they are just
  // no longer shared.
  EXPECT_EQ(stats(cache).pages_used, 4u);
  EXPECT_EQ(stats(cache).pages_shared, 2u);
  EXPECT_EQ(gatherKeys(cache, parent, 0), parentKeys);
  EXPECT_EQ(live(cache, parent, 0), std::vector<uint8_t>(300, 1));
  kvc_rt_sequence_view view;
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, parent, 0, &view));
  EXPECT_EQ(view.live_bitmap, nullptr) << "the parent never evicted";
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));

  // A fork of the evicted child has its live sets and its holes.
  ASSERT_RT_OK(kvc_rt_sequence_fork(cache, child, &grandchild));
  EXPECT_EQ(pages(cache, grandchild), pages(cache, child));
  EXPECT_EQ(live(cache, grandchild, 1), live(cache, child, 1));
  EXPECT_EQ(stats(cache).tokens_evicted, 2 * uint64_t(H) * (300 - 64));
  // ... copied, not shared: evicting more in the grandchild (H2O with a
  // smaller budget) leaves the child's bitmap alone.
  const std::vector<uint8_t> childLive = live(cache, child, 0);
  const kvc_rt_evict_policy h2o = policyOf(1, 2, 8, 12);
  std::vector<float> scores(size_t{H} * 300, 1.0f);
  ASSERT_RT_OK(kvc_rt_evict(cache, grandchild, 0, &h2o, scores.data(), 300));
  EXPECT_EQ(live(cache, child, 0), childLive);
  EXPECT_NE(live(cache, grandchild, 0), childLive);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));

  // The parent's own eviction now frees pages 1 and 2.
  ASSERT_RT_OK(kvc_rt_evict(cache, parent, 0, &streaming, nullptr, 300));
  EXPECT_EQ(stats(cache).pages_used, 2u);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));
  for (kvc_rt_seq s : {child, parent, grandchild})
    ASSERT_RT_OK(kvc_rt_sequence_free(cache, s));
  EXPECT_EQ(stats(cache).pages_used, 0u);
  EXPECT_EQ(stats(cache).tokens_evicted, 0u);
}

// Within budget nothing changes and no bitmap is allocated.
TEST_P(Evicting, WithinBudgetIsANoOp) {
  CacheHolder cache(config());
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  append(cache, seq, 0, 50);
  const kvc_rt_evict_policy h2o = policyOf(1, 4, 16, 64);
  std::vector<float> scores(size_t{H} * 50, 0.5f);
  ASSERT_RT_OK(kvc_rt_evict(cache, seq, 0, &h2o, scores.data(), 50));
  kvc_rt_sequence_view view;
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, seq, 0, &view));
  EXPECT_EQ(view.live_bitmap, nullptr);
  EXPECT_EQ(view.evicted_tokens, 0u);
  EXPECT_EQ(stats(cache).tokens_live, uint64_t(H) * 50);
  // An empty sequence too.
  kvc_rt_seq empty;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &empty));
  ASSERT_RT_OK(kvc_rt_evict(cache, empty, 0, &h2o, scores.data(), 0));
  EXPECT_RT(KVC_RT_OK, kvc_rt_live_tokens(cache, empty, 0, 0, nullptr, 0));
}

// Every error: the documented status, a message, and nothing changed.
TEST_P(Evicting, ErrorsLeaveTheStateUnchanged) {
  CacheHolder cache(config());
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seq, freed;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &freed));
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, freed));
  append(cache, seq, 0, 300);
  const kvc_rt_evict_policy first = policyOf(0, 4, 60, 64);
  ASSERT_RT_OK(kvc_rt_evict(cache, seq, 0, &first, nullptr, 300));

  auto snapshot = [&] {
    std::vector<uint8_t> state;
    const kvc_rt_layer_stats s = stats(cache);
    const uint8_t *b = reinterpret_cast<const uint8_t *>(&s);
    state.insert(state.end(), b, b + sizeof(s));
    for (uint32_t h = 0; h < H; ++h) {
      const std::vector<uint8_t> l = live(cache, seq, h);
      state.insert(state.end(), l.begin(), l.end());
    }
    for (int32_t p : pages(cache, seq))
      state.insert(state.end(), reinterpret_cast<uint8_t *>(&p),
                   reinterpret_cast<uint8_t *>(&p) + 4);
    return state;
  };
  const std::vector<uint8_t> before = snapshot();
  std::vector<float> scores(size_t{H} * 300, 1.0f);
  const kvc_rt_evict_policy h2o = policyOf(1, 2, 8, 16);
  auto expectError = [&](kvc_rt_status want, kvc_rt_status got,
                         const std::string &message) {
    EXPECT_EQ(got, want) << message << ": " << kvc_rt_last_error();
    EXPECT_NE(std::string(kvc_rt_last_error()), "") << message;
    if (!message.empty() && message[0] == '=') {
      EXPECT_EQ(std::string(kvc_rt_last_error()), message.substr(1));
    }
    EXPECT_EQ(snapshot(), before) << message;
    EXPECT_RT(KVC_RT_OK, kvc_rt_cache_verify(cache));
  };

  expectError(KVC_RT_ERROR_NULL_POINTER,
              kvc_rt_evict(nullptr, seq, 0, &h2o, scores.data(), 300),
              "NULL cache");
  struct {
    char bytes[64];
  } fake{};
  expectError(KVC_RT_ERROR_INVALID_HANDLE,
              kvc_rt_evict(reinterpret_cast<kvc_rt_cache *>(&fake), seq, 0,
                           &h2o, scores.data(), 300),
              "foreign handle");
  expectError(KVC_RT_ERROR_NULL_POINTER,
              kvc_rt_evict(cache, seq, 0, nullptr, scores.data(), 300),
              "NULL policy");
  expectError(KVC_RT_ERROR_INVALID_SEQUENCE,
              kvc_rt_evict(cache, freed, 0, &h2o, scores.data(), 300),
              "freed sequence");
  expectError(KVC_RT_ERROR_INVALID_ARGUMENT,
              kvc_rt_evict(cache, seq, 1, &h2o, scores.data(), 300),
              "layer out of range");
  for (const kvc_rt_evict_policy &bad :
       {policyOf(1, 4, 8, 0), policyOf(1, 8, 8, 15), policyOf(0, 4, 8, 13),
        policyOf(2, 4, 0, 16)}) {
    const std::string why = num::checkEvictPolicy(toNumerics(bad));
    ASSERT_FALSE(why.empty());
    expectError(KVC_RT_ERROR_INVALID_ARGUMENT,
                kvc_rt_evict(cache, seq, 0, &bad, scores.data(), 300),
                "=" + why);
  }
  const kvc_rt_evict_policy unknown = policyOf(3, 4, 8, 16);
  expectError(KVC_RT_ERROR_INVALID_ARGUMENT,
              kvc_rt_evict(cache, seq, 0, &unknown, scores.data(), 300),
              "unknown kind");
  for (uint64_t n : {0u, 299u, 301u})
    expectError(KVC_RT_ERROR_INVALID_ARGUMENT,
                kvc_rt_evict(cache, seq, 0, &h2o, scores.data(), n),
                "num_tokens " + std::to_string(n));
  for (uint32_t kind : {1u, 2u}) {
    const kvc_rt_evict_policy scored = policyOf(kind, 2, 8, 16);
    expectError(KVC_RT_ERROR_INVALID_ARGUMENT,
                kvc_rt_evict(cache, seq, 0, &scored, nullptr, 300),
                "NULL scores");
  }
  scores[H * 300 - 5] = std::numeric_limits<float>::quiet_NaN();
  expectError(KVC_RT_ERROR_INVALID_ARGUMENT,
              kvc_rt_evict(cache, seq, 0, &h2o, scores.data(), 300),
              "NaN score");

  std::vector<uint8_t> out(301);
  expectError(KVC_RT_ERROR_NULL_POINTER,
              kvc_rt_live_tokens(nullptr, seq, 0, 0, out.data(), 300),
              "live_tokens NULL cache");
  expectError(KVC_RT_ERROR_NULL_POINTER,
              kvc_rt_live_tokens(cache, seq, 0, 0, nullptr, 300),
              "live_tokens NULL out");
  expectError(KVC_RT_ERROR_INVALID_SEQUENCE,
              kvc_rt_live_tokens(cache, freed, 0, 0, out.data(), 300),
              "live_tokens freed");
  expectError(KVC_RT_ERROR_INVALID_ARGUMENT,
              kvc_rt_live_tokens(cache, seq, 1, 0, out.data(), 300),
              "live_tokens layer");
  expectError(KVC_RT_ERROR_INVALID_ARGUMENT,
              kvc_rt_live_tokens(cache, seq, 0, H, out.data(), 300),
              "live_tokens head");
  expectError(KVC_RT_ERROR_INVALID_ARGUMENT,
              kvc_rt_live_tokens(cache, seq, 0, 0, out.data(), 301),
              "live_tokens n");
}

INSTANTIATE_TEST_SUITE_P(Backends, Evicting,
                         ::testing::Values(uint32_t(KVC_RT_BACKEND_CPU),
                                           uint32_t(KVC_RT_BACKEND_CPU_STAGED)),
                         [](const ::testing::TestParamInfo<uint32_t> &info) {
                           return info.param == KVC_RT_BACKEND_CPU
                                      ? std::string("cpu")
                                      : std::string("cpu_staged");
                         });

//===----------------------------------------------------------------------===//
// The binding: what compiled code calls
//===----------------------------------------------------------------------===//

namespace {
/// [batch][H][n] scores as a memref descriptor with padded rows.
struct Scores {
  std::vector<float> data;
  kvc_rt_memref_3d_f32 desc;
  Scores(int64_t batch, int64_t n, unsigned seed) {
    const int64_t row = n + 3; // not contiguous: the binding copies
    data.resize(size_t(batch * H * row), 0.0f);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    for (float &x : data)
      x = normal(rng);
    desc.allocated = desc.aligned = data.data();
    desc.offset = 0;
    const int64_t sizes[3] = {batch, H, n};
    const int64_t strides[3] = {H * row, row, 1};
    for (int i = 0; i < 3; ++i) {
      desc.sizes[i] = sizes[i];
      desc.strides[i] = strides[i];
    }
  }
  /// Entry b's [H][n] rows, contiguous.
  std::vector<float> rows(int64_t b) const {
    std::vector<float> out;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < desc.sizes[2]; ++t)
        out.push_back(data[size_t(b * desc.strides[0] +
                                  h * desc.strides[1] + t)]);
    return out;
  }
};
} // namespace

TEST_P(Evicting, BindingEvictsEveryBatchEntryAndExposesBitmaps) {
  CacheHolder cache(config());
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seqs[2], mirror[2];
  for (int b = 0; b < 2; ++b) {
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seqs[b]));
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &mirror[b]));
    append(cache, seqs[b], 0, 200);
    append(cache, mirror[b], 0, 200);
  }
  kvc_rt_binding *binding = nullptr;
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, seqs, 2, &binding));

  // Nothing evicted yet: NULL bitmaps (every token live).
  EXPECT_EQ(kvc_rt_mlir_live_bitmap(binding, 0, 1), nullptr);
  const uint64_t *addresses = kvc_rt_mlir_gpu_live_bitmaps(binding);
  ASSERT_NE(addresses, nullptr) << kvc_rt_binding_error(binding);
  for (int i = 0; i < 2 * int(H); ++i)
    EXPECT_EQ(addresses[i], 0u);

  Scores scores(2, 200, 17);
  _mlir_ciface_kvc_rt_mlir_evict(binding, &scores.desc, KVC_RT_EVICT_H2O, 4,
                                 32, 80);
  ASSERT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK)
      << kvc_rt_binding_error(binding);
  // The same as kvc_rt_evict on each sequence.
  const kvc_rt_evict_policy h2o = policyOf(1, 4, 32, 80);
  for (int b = 0; b < 2; ++b) {
    const std::vector<float> rows = scores.rows(b);
    ASSERT_RT_OK(kvc_rt_evict(cache, mirror[b], 0, &h2o, rows.data(), 200));
    for (uint32_t h = 0; h < H; ++h) {
      const std::vector<uint8_t> want = live(cache, mirror[b], h);
      EXPECT_EQ(live(cache, seqs[b], h), want);
      const uint8_t *bits = kvc_rt_mlir_live_bitmap(binding, b, h);
      ASSERT_NE(bits, nullptr);
      for (uint32_t t = 0; t < 200; ++t)
        ASSERT_EQ(bits[t / 8] >> (t % 8) & 1, want[t]);
    }
  }
  // The kernels' copies (CPU_STAGED: "backend" memory is host memory too).
  addresses = kvc_rt_mlir_gpu_live_bitmaps(binding);
  ASSERT_NE(addresses, nullptr) << kvc_rt_binding_error(binding);
  for (int b = 0; b < 2; ++b)
    for (uint32_t h = 0; h < H; ++h) {
      const uint8_t *bits = reinterpret_cast<const uint8_t *>(
          uintptr_t(addresses[b * H + h]));
      ASSERT_NE(bits, nullptr);
      const uint8_t *host = kvc_rt_mlir_live_bitmap(binding, b, h);
      EXPECT_EQ(std::memcmp(bits, host, 200 / 8), 0);
    }

  // Bad arguments are sticky errors.
  EXPECT_EQ(kvc_rt_mlir_live_bitmap(binding, 0, H), nullptr);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_ARGUMENT);
  kvc_rt_binding_clear_error(binding);
  _mlir_ciface_kvc_rt_mlir_evict(binding, &scores.desc, KVC_RT_EVICT_H2O, 4,
                                 32, 20); // budget < sink + window
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_ARGUMENT);
  kvc_rt_binding_clear_error(binding);
  Scores wrong(1, 200, 3);
  _mlir_ciface_kvc_rt_mlir_evict(binding, &wrong.desc, KVC_RT_EVICT_H2O, 4, 32,
                                 80);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_SHAPE_MISMATCH);
  kvc_rt_binding_clear_error(binding);
  Scores stale(2, 150, 3);
  _mlir_ciface_kvc_rt_mlir_evict(binding, &stale.desc, KVC_RT_EVICT_H2O, 4, 32,
                                 80);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_ARGUMENT);
  kvc_rt_binding_clear_error(binding);
  _mlir_ciface_kvc_rt_mlir_evict(binding, &scores.desc, -1, 4, 32, 80);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_ARGUMENT);
  kvc_rt_binding_clear_error(binding);
  // Streaming needs no scores: NULL, or the lowering's empty memref.
  Scores empty(0, 0, 1);
  empty.desc.sizes[1] = 0;
  _mlir_ciface_kvc_rt_mlir_evict(binding, &empty.desc, KVC_RT_EVICT_STREAMING,
                                 4, 12, 16);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK)
      << kvc_rt_binding_error(binding);
  _mlir_ciface_kvc_rt_mlir_evict(binding, nullptr, KVC_RT_EVICT_STREAMING, 4,
                                 12, 16);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK)
      << kvc_rt_binding_error(binding);
  EXPECT_EQ(stats(cache).tokens_live, uint64_t(H) * (2 * 16 + 2 * 80));
  kvc_rt_binding_destroy(binding);
}

// Per-head budgets: head h keeps what selectKeptTokens keeps with its own
// budget; bad budgets change nothing; the binding entry point checks their
// count and range.
TEST_P(Evicting, PerHeadBudgetsKeepEachHeadsOwnShare) {
  CacheHolder cache(config());
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seqs[2];
  for (int b = 0; b < 2; ++b) {
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seqs[b]));
    append(cache, seqs[b], 0, 200);
  }
  Scores scores(2, 200, 23);
  const uint32_t budgets[H] = {120, 48};
  const kvc_rt_evict_policy h2o = policyOf(KVC_RT_EVICT_H2O, 4, 32, 120);

  // Errors first: nothing may change.
  const uint32_t tooSmall[H] = {120, 20}; // < sink + window
  const std::vector<float> rows0 = scores.rows(0);
  EXPECT_EQ(kvc_rt_evict_heads(cache, seqs[0], 0, &h2o, tooSmall, rows0.data(),
                               200),
            KVC_RT_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvc_rt_last_error()).find("KV head 1"),
            std::string::npos)
      << kvc_rt_last_error();
  const kvc_rt_evict_policy notLargest = policyOf(KVC_RT_EVICT_H2O, 4, 32, 100);
  EXPECT_EQ(kvc_rt_evict_heads(cache, seqs[0], 0, &notLargest, budgets,
                               rows0.data(), 200),
            KVC_RT_ERROR_INVALID_ARGUMENT);
  const kvc_rt_evict_policy streaming =
      policyOf(KVC_RT_EVICT_STREAMING, 4, 32, 36);
  const uint32_t streamingBudgets[H] = {36, 36};
  EXPECT_EQ(kvc_rt_evict_heads(cache, seqs[0], 0, &streaming, streamingBudgets,
                               nullptr, 200),
            KVC_RT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(stats(cache).tokens_evicted, 0u);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));

  // Each head keeps its own budget of its own scores.
  ASSERT_RT_OK(kvc_rt_evict_heads(cache, seqs[0], 0, &h2o, budgets,
                                  rows0.data(), 200));
  num::EvictPolicy policy = toNumerics(h2o);
  policy.headBudgets = {budgets[0], budgets[1]};
  for (uint32_t h = 0; h < H; ++h) {
    std::vector<uint8_t> want(200, 1);
    num::selectKeptTokens(policy.forHead(h), rows0.data() + h * 200, 200,
                          want.data());
    EXPECT_EQ(live(cache, seqs[0], h), want) << "head " << h;
    EXPECT_EQ(std::count(want.begin(), want.end(), uint8_t(1)),
              int64_t(budgets[h]));
  }
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));

  // The binding's entry point: the same for entry 1 (entry 0 is already
  // under budget); budgets any stride.
  kvc_rt_binding *binding = nullptr;
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, seqs, 2, &binding));
  int64_t strided[2 * H] = {120, -7, 48, -7};
  kvc_rt_memref_1d_i64 desc = {strided, strided, 0, {H}, {2}};
  _mlir_ciface_kvc_rt_mlir_evict_heads(binding, &scores.desc,
                                       KVC_RT_EVICT_H2O, 4, 32, &desc);
  ASSERT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK)
      << kvc_rt_binding_error(binding);
  const std::vector<float> rows1 = scores.rows(1);
  for (uint32_t h = 0; h < H; ++h) {
    std::vector<uint8_t> want(200, 1);
    num::selectKeptTokens(policy.forHead(h), rows1.data() + h * 200, 200,
                          want.data());
    EXPECT_EQ(live(cache, seqs[1], h), want) << "head " << h;
  }
  EXPECT_EQ(stats(cache).tokens_live, uint64_t(2) * (120 + 48));

  // Wrong count, out-of-range budget: sticky errors, nothing changed.
  kvc_rt_memref_1d_i64 one = {strided, strided, 0, {1}, {1}};
  _mlir_ciface_kvc_rt_mlir_evict_heads(binding, &scores.desc,
                                       KVC_RT_EVICT_H2O, 4, 32, &one);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_SHAPE_MISMATCH);
  EXPECT_NE(std::string(kvc_rt_binding_error(binding))
                .find("1 per-head budgets for 2 KV heads"),
            std::string::npos)
      << kvc_rt_binding_error(binding);
  kvc_rt_binding_clear_error(binding);
  int64_t negative[H] = {120, -1};
  kvc_rt_memref_1d_i64 bad = {negative, negative, 0, {H}, {1}};
  _mlir_ciface_kvc_rt_mlir_evict_heads(binding, &scores.desc,
                                       KVC_RT_EVICT_H2O, 4, 32, &bad);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_ARGUMENT);
  kvc_rt_binding_clear_error(binding);
  _mlir_ciface_kvc_rt_mlir_evict_heads(binding, &scores.desc,
                                       KVC_RT_EVICT_H2O, 4, 32, nullptr);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_SHAPE_MISMATCH);
  EXPECT_EQ(stats(cache).tokens_live, uint64_t(2) * (120 + 48));
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));
  kvc_rt_binding_destroy(binding);
}
