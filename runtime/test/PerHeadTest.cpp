//===- PerHeadTest.cpp - A different encoding for every KV head -----------===//
//
// encodings_per_layer == kv_heads (the cost model's granularity=head):
// configuration errors, page geometry (docs/layout.md 4.1), footprint and
// capacity sums, append + gather against the numerics spec head by head,
// stored block bytes, fork / free, check_layer_heads and head views.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Layout.h"

#include <cmath>
#include <cstring>
#include <string>

using namespace kvc::rt::testing;
namespace num = kvc::numerics;

namespace {
const uint32_t CH = KVC_RT_AXIS_CHANNEL, TOK = KVC_RT_AXIS_TOKEN;

std::string lastError() { return kvc_rt_last_error(); }

num::SideEncoding side(const kvc_rt_side_encoding &s) {
  if (s.kind == KVC_RT_SIDE_QUANT)
    return num::SideEncoding::quantized(
        s.bits, s.axis == CH ? num::QuantAxis::Channel : num::QuantAxis::Token,
        s.group);
  if (s.kind == KVC_RT_SIDE_FP8)
    return num::SideEncoding::fp8Format(s.fp8_format == KVC_RT_FP8_E4M3
                                            ? num::FP8Format::E4M3
                                            : num::FP8Format::E5M2);
  return num::SideEncoding::plain();
}

size_t blockBytes(const kvc_rt_side_encoding &s, uint32_t d, uint32_t t) {
  return num::computeBlockLayout(side(s), d, t).blockBytes;
}

/// One layer of three heads of dimension 64, 64-token pages, R = 64:
/// 4-bit / 2-bit / fp16 keys, 2-bit / fp8 / 4-bit values.
ModelConfig threeHeads(uint32_t backend = KVC_RT_BACKEND_CPU) {
  ModelConfig m;
  kvc_rt_config_init(&m.config);
  m.config.backend = backend;
  m.config.num_layers = 1;
  m.config.kv_heads = 3;
  m.config.head_dim = 64;
  m.config.page_tokens = 64;
  m.config.max_sequences = 4;
  m.config.max_tokens = 512;
  m.config.pages_per_layer = 24;
  m.config.encodings_per_layer = 3;
  m.encodings = {makeEncoding(quantSide(4, CH, 32), quantSide(2, TOK, 32), 64),
                 makeEncoding(quantSide(2, CH, 32), fp8Side(KVC_RT_FP8_E4M3), 64),
                 makeEncoding(fp16Side(), quantSide(4, TOK, 64), 64)};
  m.name = "three-heads";
  return m;
}

bool sameBits(const std::vector<float> &a, const std::vector<float> &b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(std::isnan(a[i]) && std::isnan(b[i])) &&
        std::memcmp(&a[i], &b[i], sizeof(float)) != 0)
      return false;
  return true;
}

/// Head `h` of (seq, layer 0) gathers as simulateCacheSide of the
/// fp16-rounded inputs with that head's encoding.
void expectHeadMatchesSpec(kvc_rt_cache *cache, kvc_rt_seq seq,
                           const ModelConfig &m, uint32_t h,
                           const std::vector<float> &keys,
                           const std::vector<float> &values, uint32_t total,
                           uint32_t n) {
  const uint32_t D = m.config.head_dim;
  const kvc_rt_encoding &enc = m.encodingOf(0, h);
  std::vector<float> gotK(size_t{n} * D), gotV(size_t{n} * D);
  ASSERT_RT_OK(kvc_rt_gather(cache, seq, 0, h, gotK.data(), gotV.data(), n));
  for (int v = 0; v < 2; ++v) {
    const float *src = (v ? values : keys).data() + size_t{h} * total * D;
    std::vector<float> x(size_t{n} * D);
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = num::roundToHalf(src[i]);
    EXPECT_TRUE(sameBits(v ? gotV : gotK,
                         num::simulateCacheSide(x.data(), n, D,
                                                side(v ? enc.value : enc.key),
                                                enc.residual)))
        << (v ? "values" : "keys") << " of head " << h << ", n = " << n;
  }
}
} // namespace

TEST(RuntimePerHead, ConfigValidation) {
  ModelConfig m = threeHeads();
  kvc_rt_cache_config c = m.get();
  ASSERT_RT_OK(kvc_rt_config_validate(&c));

  // Only 1 (0 reads as 1) or kv_heads.
  for (uint32_t bad : {2u, 4u, 6u}) {
    c = m.get();
    c.encodings_per_layer = bad;
    kvc_rt_cache *cache = nullptr;
    EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT, kvc_rt_cache_create(&c, &cache));
    EXPECT_EQ(cache, nullptr);
    EXPECT_NE(lastError().find("encodings_per_layer"), std::string::npos)
        << lastError();
    kvc_rt_footprint f;
    EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT, kvc_rt_config_footprint(&c, &f));
  }
  for (uint32_t one : {0u, 1u}) {
    c = m.get();
    c.encodings_per_layer = one; // reads encodings[0] for every head
    EXPECT_RT(KVC_RT_OK, kvc_rt_config_validate(&c));
    CacheHolder cache(c);
    ASSERT_RT_OK(cache.status());
    kvc_rt_cache_config got;
    ASSERT_RT_OK(kvc_rt_cache_get_config(cache, &got));
    EXPECT_EQ(got.encodings_per_layer, 1u);
    kvc_rt_layer_view lv;
    ASSERT_RT_OK(kvc_rt_layer_view_get(cache, 0, &lv));
    EXPECT_EQ(lv.uniform_heads, 1u);
  }

  // One residual window per layer.
  m.encodings[2].residual = 128;
  c = m.get();
  kvc_rt_cache *cache = nullptr;
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT, kvc_rt_cache_create(&c, &cache));
  EXPECT_EQ(cache, nullptr);
  EXPECT_NE(lastError().find("layer 0 head 2: residual 128 differs from head "
                             "0's residual 64"),
            std::string::npos)
      << lastError();

  // A bad encoding is reported with its head.
  m = threeHeads();
  m.encodings[1].value = quantSide(2, TOK, 48);
  c = m.get();
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT, kvc_rt_config_validate(&c));
  EXPECT_NE(lastError().find("layer 0 head 1: "), std::string::npos)
      << lastError();
  kvc_rt_capacity_plan plan;
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_plan_capacity(&c, 1 << 30, 100, &plan));
}

TEST(RuntimePerHead, GeometryFootprintAndStatsAreSums) {
  const ModelConfig m = threeHeads();
  const kvc_rt_cache_config &c = m.config;
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  uint64_t kPage = 0, vPage = 0;
  for (uint32_t h = 0; h < 3; ++h) {
    kvc_rt_head_view hv;
    ASSERT_RT_OK(kvc_rt_head_view_get(cache, 0, h, &hv));
    EXPECT_EQ(std::memcmp(&hv.encoding, &m.encodings[h], sizeof(hv.encoding)),
              0);
    EXPECT_EQ(hv.k_block_offset, kPage) << "head " << h;
    EXPECT_EQ(hv.v_block_offset, vPage) << "head " << h;
    EXPECT_EQ(hv.k.block_bytes, blockBytes(m.encodings[h].key, 64, 64));
    EXPECT_EQ(hv.v.block_bytes, blockBytes(m.encodings[h].value, 64, 64));
    EXPECT_EQ(hv.k_block_offset % 16, 0u);
    kPage += hv.k.block_bytes;
    vPage += hv.v.block_bytes;
  }
  // 4-bit + 2-bit channel keys and fp16 keys: 2048+512, 1024+512, 8192.
  EXPECT_EQ(kPage, 2560u + 1536u + 8192u);
  kvc_rt_layer_view lv;
  ASSERT_RT_OK(kvc_rt_layer_view_get(cache, 0, &lv));
  EXPECT_EQ(lv.uniform_heads, 0u);
  EXPECT_EQ(lv.k.page_bytes, kPage);
  EXPECT_EQ(lv.v.page_bytes, vPage);
  EXPECT_EQ(lv.k.block_bytes, blockBytes(m.encodings[0].key, 64, 64))
      << "k describes head 0";
  EXPECT_EQ(std::memcmp(&lv.encoding, &m.encodings[0], sizeof(lv.encoding)), 0);

  // The footprint's pools are pages_per_layer whole pages per side.
  kvc_rt_footprint f;
  const kvc_rt_cache_config cc = m.get();
  ASSERT_RT_OK(kvc_rt_config_footprint(&cc, &f));
  EXPECT_EQ(f.pool_bytes, c.pages_per_layer * (kPage + vPage));
  EXPECT_EQ(f.staging_bytes, 2ull * c.max_sequences * 3 * 64 * 64 * 2);
  kvc_rt_capacity_plan plan;
  ASSERT_RT_OK(kvc_rt_plan_capacity(&cc, 1 << 24, 200, &plan));
  EXPECT_EQ(plan.pages_per_sequence, 3u); // 192 compressed tokens
  EXPECT_EQ(plan.bytes_per_sequence,
            3 * (kPage + vPage) + 2ull * 3 * 64 * 64 * 2);
  ASSERT_GT(plan.max_sequences, 0u);
  EXPECT_LE(plan.footprint.backend_bytes, uint64_t(1) << 24);

  // Stats count whole pages of every head.
  const uint32_t N = 130;
  const std::vector<float> keys = randomTokens(3, N, 64, 1);
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  kvc_rt_tokens t = sliceTokens(keys, keys, 3, N, 64, 0, N);
  ASSERT_RT_OK(kvc_rt_append(cache, seq, 0, &t));
  kvc_rt_layer_stats ls;
  ASSERT_RT_OK(kvc_rt_layer_stats_get(cache, 0, &ls));
  EXPECT_EQ(ls.pages_used, 2u);
  EXPECT_EQ(ls.k_page_bytes_used, 2 * kPage);
  EXPECT_EQ(ls.v_page_bytes_used, 2 * vPage);
  kvc_rt_cache_stats cs;
  ASSERT_RT_OK(kvc_rt_cache_stats_get(cache, &cs));
  EXPECT_EQ(cs.k_bytes_used, 2 * kPage + 3 * 64 * 64 * 2);
}

TEST(RuntimePerHead, UniformHeadsAreByteIdenticalToOneEncodingPerLayer) {
  ModelConfig perLayer = simpleConfig(kivi2(64));
  ModelConfig perHead = perLayer;
  perHead.config.encodings_per_layer = perHead.config.kv_heads;
  perHead.encodings.assign(perHead.config.kv_heads, kivi2(64));
  CacheHolder a(perLayer), b(perHead);
  ASSERT_RT_OK(a.status());
  ASSERT_RT_OK(b.status());
  const kvc_rt_cache_config ca = perLayer.get(), cb = perHead.get();
  kvc_rt_footprint fa, fb;
  ASSERT_RT_OK(kvc_rt_config_footprint(&ca, &fa));
  ASSERT_RT_OK(kvc_rt_config_footprint(&cb, &fb));
  EXPECT_EQ(std::memcmp(&fa, &fb, sizeof(fa)), 0);
  kvc_rt_layer_view la, lb;
  ASSERT_RT_OK(kvc_rt_layer_view_get(a, 0, &la));
  ASSERT_RT_OK(kvc_rt_layer_view_get(b, 0, &lb));
  EXPECT_EQ(lb.uniform_heads, 1u);
  EXPECT_EQ(std::memcmp(&la.k, &lb.k, sizeof(la.k)), 0);
  const uint32_t N = 200;
  const std::vector<float> keys = randomTokens(2, N, 64, 3);
  const std::vector<float> values = randomTokens(2, N, 64, 4);
  kvc_rt_seq sa, sb;
  ASSERT_RT_OK(kvc_rt_sequence_create(a, &sa));
  ASSERT_RT_OK(kvc_rt_sequence_create(b, &sb));
  kvc_rt_tokens t = sliceTokens(keys, values, 2, N, 64, 0, N);
  ASSERT_RT_OK(kvc_rt_append(a, sa, 0, &t));
  ASSERT_RT_OK(kvc_rt_append(b, sb, 0, &t));
  kvc_rt_sequence_view va, vb;
  ASSERT_RT_OK(kvc_rt_sequence_view_get(a, sa, 0, &va));
  ASSERT_RT_OK(kvc_rt_sequence_view_get(b, sb, 0, &vb));
  ASSERT_EQ(va.num_pages, 3u);
  for (uint32_t i = 0; i < va.num_pages; ++i) {
    EXPECT_EQ(std::memcmp(static_cast<const uint8_t *>(va.k_pool) +
                              va.page_table[i] * va.k.page_bytes,
                          static_cast<const uint8_t *>(vb.k_pool) +
                              vb.page_table[i] * vb.k.page_bytes,
                          va.k.page_bytes),
              0);
    EXPECT_EQ(std::memcmp(static_cast<const uint8_t *>(va.v_pool) +
                              va.page_table[i] * va.v.page_bytes,
                          static_cast<const uint8_t *>(vb.v_pool) +
                              vb.page_table[i] * vb.v.page_bytes,
                          va.v.page_bytes),
              0);
  }
}

class RuntimePerHeadBackends : public ::testing::TestWithParam<uint32_t> {};

TEST_P(RuntimePerHeadBackends, AppendGatherAndBlocksFollowEachHead) {
  const ModelConfig m = threeHeads(GetParam());
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  const uint32_t H = 3, D = 64, T = 64, N = 300;
  const std::vector<float> keys = randomTokens(H, N, D, 11);
  const std::vector<float> values = randomTokens(H, N, D, 12);
  kvc_rt_seq other, seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &other));
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  kvc_rt_tokens t = sliceTokens(keys, values, H, N, D, 0, 70);
  ASSERT_RT_OK(kvc_rt_append(cache, other, 0, &t)); // interleave the pools
  const uint32_t chunks[] = {1, 63, 1, 5, 90, 1, 64, 75};
  uint32_t n = 0;
  for (uint32_t count : chunks) {
    t = sliceTokens(keys, values, H, N, D, n, count);
    ASSERT_RT_OK(kvc_rt_append(cache, seq, 0, &t));
    n += count;
    for (uint32_t h = 0; h < H; ++h)
      expectHeadMatchesSpec(cache, seq, m, h, keys, values, N, n);
  }
  ASSERT_EQ(n, N);

  // Stored bytes: each head's block is what writePageTokens writes for its
  // encoding, at its offset in the page.
  kvc_rt_sequence_view sv;
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, seq, 0, &sv));
  ASSERT_EQ(sv.num_pages, 4u);
  for (uint32_t h = 0; h < H; ++h) {
    kvc_rt_head_view hv;
    ASSERT_RT_OK(kvc_rt_head_view_get(cache, 0, h, &hv));
    for (int v = 0; v < 2; ++v) {
      const kvc_rt_side_encoding &se =
          v ? m.encodings[h].value : m.encodings[h].key;
      const kvc_rt_block_layout &bl = v ? hv.v : hv.k;
      const float *src = (v ? values : keys).data() + size_t{h} * N * D;
      for (uint32_t i = 0; i < sv.num_pages; ++i) {
        std::vector<float> x(size_t{T} * D);
        for (size_t j = 0; j < x.size(); ++j)
          x[j] = num::roundToHalf(src[size_t{i} * T * D + j]);
        std::vector<uint8_t> want(bl.block_bytes, 0), got(bl.block_bytes, 1);
        num::writePageTokens(x.data(), 0, T, side(se), D, T, want.data());
        ASSERT_RT_OK(kvc_rt_read_block(cache, 0, sv.page_table[i], h,
                                       v ? KVC_RT_POOL_V : KVC_RT_POOL_K,
                                       got.data(), got.size()));
        EXPECT_EQ(got, want) << "head " << h << " side " << v << " page " << i;
        if (GetParam() == KVC_RT_BACKEND_CPU) {
          // Compiled code's address: pool + page * page_bytes + offset.
          const uint8_t *direct =
              static_cast<const uint8_t *>(v ? sv.v_pool : sv.k_pool) +
              size_t(sv.page_table[i]) * bl.page_bytes +
              (v ? hv.v_block_offset : hv.k_block_offset);
          EXPECT_EQ(std::memcmp(direct, want.data(), want.size()), 0);
        }
      }
    }
    // A buffer of this head's block size is enough, one byte less is not.
    std::vector<uint8_t> exact(hv.k.block_bytes);
    EXPECT_RT(KVC_RT_OK, kvc_rt_read_block(cache, 0, sv.page_table[0], h,
                                           KVC_RT_POOL_K, exact.data(),
                                           exact.size()));
    EXPECT_RT(KVC_RT_ERROR_CAPACITY_EXCEEDED,
              kvc_rt_read_block(cache, 0, sv.page_table[0], h, KVC_RT_POOL_K,
                                exact.data(), exact.size() - 1));
  }
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));
}

TEST_P(RuntimePerHeadBackends, ForkCopyOnWriteAndFree) {
  // R = 32 < T: flushes end inside pages, so a fork's next flush copies.
  ModelConfig m = threeHeads(GetParam());
  m.encodings = {makeEncoding(quantSide(2, CH, 32), quantSide(4, TOK, 32), 32),
                 makeEncoding(fp8Side(KVC_RT_FP8_E5M2), fp16Side(), 32),
                 makeEncoding(quantSide(8, TOK, 64), quantSide(3, TOK, 32), 32)};
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  const uint32_t H = 3, D = 64, N = 200;
  const std::vector<float> keys = randomTokens(H, N, D, 21);
  const std::vector<float> values = randomTokens(H, N, D, 22);
  kvc_rt_seq parent, child;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &parent));
  kvc_rt_tokens t = sliceTokens(keys, values, H, N, D, 0, 100);
  ASSERT_RT_OK(kvc_rt_append(cache, parent, 0, &t));
  ASSERT_RT_OK(kvc_rt_sequence_fork(cache, parent, &child));
  kvc_rt_layer_stats ls;
  ASSERT_RT_OK(kvc_rt_layer_stats_get(cache, 0, &ls));
  EXPECT_EQ(ls.pages_shared, 2u); // 96 compressed tokens
  for (uint32_t h = 0; h < H; ++h)
    expectHeadMatchesSpec(cache, child, m, h, keys, values, N, 100);

  // The child's flush at 128 writes into the shared page 1: copy-on-write.
  t = sliceTokens(keys, values, H, N, D, 100, 100);
  ASSERT_RT_OK(kvc_rt_append(cache, child, 0, &t));
  ASSERT_RT_OK(kvc_rt_layer_stats_get(cache, 0, &ls));
  EXPECT_EQ(ls.pages_shared, 1u);
  EXPECT_EQ(ls.pages_used, 4u); // parent's 2 (page 0 shared), child's 2 new
  for (uint32_t h = 0; h < H; ++h) {
    expectHeadMatchesSpec(cache, child, m, h, keys, values, N, 200);
    expectHeadMatchesSpec(cache, parent, m, h, keys, values, N, 100);
  }
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, parent));
  for (uint32_t h = 0; h < H; ++h)
    expectHeadMatchesSpec(cache, child, m, h, keys, values, N, 200);
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, child));
  ASSERT_RT_OK(kvc_rt_layer_stats_get(cache, 0, &ls));
  EXPECT_EQ(ls.pages_used, 0u);
  EXPECT_EQ(ls.k_page_bytes_used, 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, RuntimePerHeadBackends,
                         ::testing::Values(uint32_t(KVC_RT_BACKEND_CPU),
                                           uint32_t(KVC_RT_BACKEND_CPU_STAGED)));

TEST(RuntimePerHead, CheckLayerHeads) {
  const ModelConfig m = threeHeads();
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  const kvc_rt_encoding *encs = m.encodings.data();
  EXPECT_RT(KVC_RT_OK,
            kvc_rt_cache_check_layer_heads(cache, 0, encs, 3, 3, 64, 64));

  // One encoding for all heads: head 1 is the first that differs.
  EXPECT_RT(KVC_RT_ERROR_ENCODING_MISMATCH,
            kvc_rt_cache_check_layer_heads(cache, 0, encs, 1, 3, 64, 64));
  std::string message = lastError();
  EXPECT_NE(message.find("layer 0 head 1 is encoded as {"), std::string::npos)
      << message;
  EXPECT_NE(message.find("expected {"), std::string::npos) << message;
  EXPECT_RT(KVC_RT_ERROR_ENCODING_MISMATCH,
            kvc_rt_cache_check_layer(cache, 0, &encs[0], 3, 64, 64));
  EXPECT_EQ(lastError(), message) << "check_layer is the count-1 case";

  // Head 2 differs.
  std::vector<kvc_rt_encoding> swapped = m.encodings;
  swapped[2].key = quantSide(2, CH, 32);
  EXPECT_RT(KVC_RT_ERROR_ENCODING_MISMATCH,
            kvc_rt_cache_check_layer_heads(cache, 0, swapped.data(), 3, 3, 64,
                                           64));
  EXPECT_NE(lastError().find("head 2"), std::string::npos) << lastError();
  EXPECT_STREQ(kvc_rt_cache_last_error(cache), kvc_rt_last_error());

  // Bad arguments.
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_cache_check_layer_heads(cache, 0, encs, 2, 3, 64, 64));
  EXPECT_NE(lastError().find("count"), std::string::npos);
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_cache_check_layer_heads(cache, 0, encs, 0, 3, 64, 64));
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_cache_check_layer_heads(cache, 1, encs, 3, 3, 64, 64));
  EXPECT_RT(KVC_RT_ERROR_SHAPE_MISMATCH,
            kvc_rt_cache_check_layer_heads(cache, 0, encs, 2, 2, 64, 64));
  EXPECT_RT(KVC_RT_ERROR_SHAPE_MISMATCH,
            kvc_rt_cache_check_layer_heads(cache, 0, encs, 3, 3, 128, 64));
  EXPECT_RT(KVC_RT_ERROR_ENCODING_MISMATCH,
            kvc_rt_cache_check_layer_heads(cache, 0, encs, 3, 3, 64, 32));
  std::vector<kvc_rt_encoding> malformed = m.encodings;
  malformed[1].value.kind = 7;
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_cache_check_layer_heads(cache, 0, malformed.data(), 3, 3,
                                           64, 64));
  EXPECT_NE(lastError().find("encodings[1]"), std::string::npos) << lastError();
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_cache_check_layer_heads(cache, 0, nullptr, 3, 3, 64, 64));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_cache_check_layer_heads(nullptr, 0, encs, 3, 3, 64, 64));
  kvc_rt_cache *dead = nullptr;
  {
    CacheHolder other(m);
    dead = other.get();
  }
  EXPECT_RT(KVC_RT_ERROR_INVALID_HANDLE,
            kvc_rt_cache_check_layer_heads(dead, 0, encs, 3, 3, 64, 64));
}

TEST(RuntimePerHead, HeadViewErrors) {
  CacheHolder cache(threeHeads());
  ASSERT_RT_OK(cache.status());
  kvc_rt_head_view hv;
  std::memset(&hv, 0x5A, sizeof(hv));
  const kvc_rt_head_view before = hv;
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_head_view_get(cache, 0, 3, &hv));
  EXPECT_NE(lastError().find("head 3"), std::string::npos);
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_head_view_get(cache, 1, 0, &hv));
  EXPECT_NE(lastError().find("layer 1"), std::string::npos);
  EXPECT_EQ(std::memcmp(&hv, &before, sizeof(hv)), 0) << "out not written";
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_head_view_get(cache, 0, 0, nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_head_view_get(nullptr, 0, 0, &hv));
  kvc_rt_cache *dead = nullptr;
  {
    CacheHolder other(threeHeads());
    dead = other.get();
  }
  EXPECT_RT(KVC_RT_ERROR_INVALID_HANDLE, kvc_rt_head_view_get(dead, 0, 0, &hv));
  // Uniform caches: head h's blocks at h * block_bytes.
  CacheHolder uniform(simpleConfig(kivi2()));
  ASSERT_RT_OK(uniform.status());
  ASSERT_RT_OK(kvc_rt_head_view_get(uniform, 0, 1, &hv));
  EXPECT_EQ(hv.k_block_offset, hv.k.block_bytes);
  EXPECT_EQ(hv.v_block_offset, hv.v.block_bytes);
  EXPECT_EQ(hv.k.page_bytes, 2 * hv.k.block_bytes);
}
