//===- AppendTest.cpp - Append, the residual rule, views and bytes --------===//

#include "TestUtil.h"

#include "Cache.h"

#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Layout.h"

#include <cmath>
#include <cstring>
#include <limits>

using namespace kvc::rt::testing;
namespace num = kvc::numerics;

namespace {
num::SideEncoding side(const kvc_rt_side_encoding &s) {
  if (s.kind == KVC_RT_SIDE_QUANT)
    return num::SideEncoding::quantized(s.bits,
                                        s.axis == KVC_RT_AXIS_CHANNEL
                                            ? num::QuantAxis::Channel
                                            : num::QuantAxis::Token,
                                        s.group);
  if (s.kind == KVC_RT_SIDE_FP8)
    return num::SideEncoding::fp8Format(s.fp8_format == KVC_RT_FP8_E4M3
                                            ? num::FP8Format::E4M3
                                            : num::FP8Format::E5M2);
  return num::SideEncoding::plain();
}

std::vector<float> fp16Rounded(const float *x, size_t n) {
  std::vector<float> r(n);
  for (size_t i = 0; i < n; ++i)
    r[i] = num::roundToHalf(x[i]);
  return r;
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

/// Gathers (seq, layer, head) and compares it with simulateCacheSide of the
/// fp16-rounded inputs, head `head` of [H][total][D] arrays.
void expectMatchesSpec(kvc_rt_cache *cache, kvc_rt_seq seq, uint32_t layer,
                       const kvc_rt_encoding &enc, uint32_t head,
                       const std::vector<float> &keys,
                       const std::vector<float> &values, uint32_t total,
                       uint32_t n, uint32_t dim) {
  std::vector<float> gotK(size_t{n} * dim), gotV(size_t{n} * dim);
  ASSERT_RT_OK(kvc_rt_gather(cache, seq, layer, head, gotK.data(),
                             gotV.data(), n));
  const std::vector<float> k =
      fp16Rounded(keys.data() + size_t{head} * total * dim, size_t{n} * dim);
  const std::vector<float> v =
      fp16Rounded(values.data() + size_t{head} * total * dim, size_t{n} * dim);
  EXPECT_TRUE(sameBits(gotK, num::simulateCacheSide(k.data(), n, dim,
                                                    side(enc.key),
                                                    enc.residual)))
      << "keys, layer " << layer << " head " << head << " n " << n;
  EXPECT_TRUE(sameBits(gotV, num::simulateCacheSide(v.data(), n, dim,
                                                    side(enc.value),
                                                    enc.residual)))
      << "values, layer " << layer << " head " << head << " n " << n;
}

/// All blocks of all pages of (seq, layer), K then V, as bytes.
std::vector<uint8_t> pageBytes(kvc_rt_cache *cache, kvc_rt_seq seq,
                               uint32_t layer) {
  kvc_rt_sequence_view view;
  EXPECT_EQ(kvc_rt_sequence_view_get(cache, seq, layer, &view), KVC_RT_OK);
  std::vector<uint8_t> all;
  for (uint32_t pool = 0; pool < 2; ++pool)
    for (uint32_t i = 0; i < view.num_pages; ++i)
      for (uint32_t h = 0; h < view.kv_heads; ++h) {
        kvc_rt_head_view hv;
        EXPECT_EQ(kvc_rt_head_view_get(cache, layer, h, &hv), KVC_RT_OK);
        std::vector<uint8_t> block(pool ? hv.v.block_bytes
                                        : hv.k.block_bytes);
        EXPECT_EQ(kvc_rt_read_block(cache, layer, view.page_table[i], h, pool,
                                    block.data(), block.size()),
                  KVC_RT_OK);
        all.insert(all.end(), block.begin(), block.end());
      }
  return all;
}
} // namespace

TEST(RuntimeAppend, ResidualRuleOneTokenAtATime) {
  const kvc_rt_encoding enc = kivi2(64);
  ModelConfig m = simpleConfig(enc);
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  const uint32_t H = 2, D = 64, N = 200;
  const std::vector<float> keys = randomTokens(H, N, D, 1);
  const std::vector<float> values = randomTokens(H, N, D, 2);
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  for (uint32_t n = 1; n <= N; ++n) {
    kvc_rt_tokens t = sliceTokens(keys, values, H, N, D, n - 1, 1);
    ASSERT_RT_OK(kvc_rt_append(cache, seq, 0, &t));
    kvc_rt_sequence_view v;
    ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, seq, 0, &v));
    ASSERT_EQ(v.num_tokens, n);
    ASSERT_EQ(v.compressed_tokens, n / 64 * 64);
    ASSERT_EQ(v.residual_tokens, n % 64);
    ASSERT_EQ(v.num_pages, n / 64);
    if (n % 50 == 0 || n % 64 == 0 || n % 64 == 1)
      for (uint32_t h = 0; h < H; ++h)
        expectMatchesSpec(cache, seq, 0, enc, h, keys, values, N, n, D);
  }
  kvc_rt_layer_stats ls;
  ASSERT_RT_OK(kvc_rt_layer_stats_get(cache, 0, &ls));
  EXPECT_EQ(ls.pages_used, 3u);
  EXPECT_EQ(ls.tokens, N);
  EXPECT_EQ(ls.compressed_tokens, 192u);
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, seq));
}

class RuntimeAppendPresets
    : public ::testing::TestWithParam<std::tuple<size_t, uint32_t>> {};

TEST_P(RuntimeAppendPresets, PrefillAndDecodeMatchTheSpec) {
  const ModelConfig m =
      preset(std::get<0>(GetParam()), std::get<1>(GetParam()));
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status()) << cache.message();
  const kvc_rt_cache_config &c = m.config;
  const uint32_t N = c.max_tokens;
  const uint32_t chunks[] = {1, 37, 5, 1, 64, 1, 1, 100, 3, 1000};
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    const std::vector<float> keys = randomTokens(c.kv_heads, N, c.head_dim, l);
    const std::vector<float> values =
        randomTokens(c.kv_heads, N, c.head_dim, 100 + l);
    uint32_t n = 0;
    for (uint32_t i = 0; n < N; ++i) {
      const uint32_t count = std::min(chunks[i % 10], N - n);
      kvc_rt_tokens t =
          sliceTokens(keys, values, c.kv_heads, N, c.head_dim, n, count);
      kvc_rt_status s = kvc_rt_append(cache, seq, l, &t);
      if (s == KVC_RT_ERROR_OUT_OF_MEMORY)
        break; // the preset's pools are deliberately small
      ASSERT_EQ(s, KVC_RT_OK) << kvc_rt_last_error();
      n += count;
      for (uint32_t h = 0; h < c.kv_heads; ++h)
        expectMatchesSpec(cache, seq, l, m.encodingOf(l, h), h, keys, values,
                          N, n, c.head_dim);
    }
    EXPECT_GT(n, 0u);
  }
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, seq));
}

INSTANTIATE_TEST_SUITE_P(
    AllPresets, RuntimeAppendPresets,
    ::testing::Combine(::testing::Range<size_t>(0, numPresets()),
                       ::testing::Values(uint32_t(KVC_RT_BACKEND_CPU),
                                         uint32_t(KVC_RT_BACKEND_CPU_STAGED))));

TEST(RuntimeAppend, ChunkingDoesNotChangeTheBytes) {
  for (size_t p = 0; p < numPresets(); ++p) {
    ModelConfig m = preset(p, KVC_RT_BACKEND_CPU);
    m.config.pages_per_layer = 64;
    const kvc_rt_cache_config &c = m.config;
    const uint32_t N = std::min(c.max_tokens, 250u);
    const std::vector<float> keys = randomTokens(c.kv_heads, N, c.head_dim, 7);
    const std::vector<float> values =
        randomTokens(c.kv_heads, N, c.head_dim, 8);
    CacheHolder cache(m);
    ASSERT_RT_OK(cache.status());
    kvc_rt_seq whole, single, mixed;
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &whole));
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &single));
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &mixed));
    for (uint32_t l = 0; l < c.num_layers; ++l) {
      kvc_rt_tokens t = sliceTokens(keys, values, c.kv_heads, N, c.head_dim, 0, N);
      ASSERT_RT_OK(kvc_rt_append(cache, whole, l, &t));
      for (uint32_t i = 0; i < N; ++i) {
        t = sliceTokens(keys, values, c.kv_heads, N, c.head_dim, i, 1);
        ASSERT_RT_OK(kvc_rt_append(cache, single, l, &t));
      }
      for (uint32_t i = 0, step = 1; i < N; i += step, step = step * 3 % 41) {
        step = std::min(step, N - i);
        t = sliceTokens(keys, values, c.kv_heads, N, c.head_dim, i, step);
        ASSERT_RT_OK(kvc_rt_append(cache, mixed, l, &t));
      }
      const std::vector<uint8_t> reference = pageBytes(cache, whole, l);
      EXPECT_FALSE(reference.empty());
      EXPECT_EQ(pageBytes(cache, single, l), reference) << m.name << " " << l;
      EXPECT_EQ(pageBytes(cache, mixed, l), reference) << m.name << " " << l;
      for (uint32_t h = 0; h < c.kv_heads; ++h)
        expectMatchesSpec(cache, mixed, l, m.encodingOf(l, h), h, keys,
                          values, N, N, c.head_dim);
    }
    for (kvc_rt_seq s : {whole, single, mixed})
      ASSERT_RT_OK(kvc_rt_sequence_free(cache, s));
  }
}

TEST(RuntimeAppend, InputLayoutsAndDtypesAgree) {
  const uint32_t H = 2, D = 64, N = 150;
  const kvc_rt_encoding enc = kivi2(32);
  CacheHolder cache(simpleConfig(enc));
  ASSERT_RT_OK(cache.status());
  const std::vector<float> keys = randomTokens(H, N, D, 3);
  const std::vector<float> values = randomTokens(H, N, D, 4);
  // The same tokens as BSHD floats and as [H][n][D] fp16 bits.
  std::vector<float> kBshd(keys.size()), vBshd(values.size());
  std::vector<uint16_t> kHalf(keys.size()), vHalf(values.size());
  for (uint32_t h = 0; h < H; ++h)
    for (uint32_t t = 0; t < N; ++t)
      for (uint32_t c = 0; c < D; ++c) {
        const size_t src = (size_t{h} * N + t) * D + c;
        kBshd[(size_t{t} * H + h) * D + c] = keys[src];
        vBshd[(size_t{t} * H + h) * D + c] = values[src];
        kHalf[src] = num::floatToHalf(keys[src]);
        vHalf[src] = num::floatToHalf(values[src]);
      }
  kvc_rt_seq a, b, c;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &a));
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &b));
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &c));
  kvc_rt_tokens t{};
  t.kv_heads = H;
  t.head_dim = D;
  t.num_tokens = N;
  t.dtype = KVC_RT_DTYPE_F32;
  t.keys = keys.data();
  t.values = values.data();
  ASSERT_RT_OK(kvc_rt_append(cache, a, 0, &t));
  t.keys = kBshd.data();
  t.values = vBshd.data();
  t.head_stride = D;
  t.token_stride = H * D;
  ASSERT_RT_OK(kvc_rt_append(cache, b, 0, &t));
  t = kvc_rt_tokens{};
  t.kv_heads = H;
  t.head_dim = D;
  t.num_tokens = N;
  t.dtype = KVC_RT_DTYPE_F16;
  t.keys = kHalf.data();
  t.values = vHalf.data();
  ASSERT_RT_OK(kvc_rt_append(cache, c, 0, &t));
  const std::vector<uint8_t> ref = pageBytes(cache, a, 0);
  EXPECT_EQ(pageBytes(cache, b, 0), ref);
  EXPECT_EQ(pageBytes(cache, c, 0), ref);
  for (uint32_t h = 0; h < H; ++h)
    for (kvc_rt_seq s : {a, b, c})
      expectMatchesSpec(cache, s, 0, enc, h, keys, values, N, N, D);
}

TEST(RuntimeAppend, InputsAreRoundedToFp16) {
  // R = 32: tokens 0..31 get compressed, 32.. stay fp16.
  const uint32_t H = 1, D = 32;
  ModelConfig m = simpleConfig(makeEncoding(fp16Side(),
                                            quantSide(4, KVC_RT_AXIS_TOKEN, 32),
                                            32));
  m.config.kv_heads = H;
  m.config.head_dim = D;
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  std::vector<float> keys(40 * D, 1.0f + 1.0f / 4096), values(40 * D, 2.0f);
  keys[33 * D] = 7.0e4f;    // beyond fp16: staged as +Inf
  values[3 * D + 5] = 7.0e4f; // poisons its (token 3) value group on flush
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  kvc_rt_tokens t = sliceTokens(keys, values, H, 40, D, 0, 40);
  ASSERT_RT_OK(kvc_rt_append(cache, seq, 0, &t));
  std::vector<float> k(40 * D), v(40 * D);
  ASSERT_RT_OK(kvc_rt_gather(cache, seq, 0, 0, k.data(), v.data(), 40));
  EXPECT_EQ(k[0], 1.0f) << "1 + 2^-12 rounds to 1 in fp16";
  EXPECT_TRUE(std::isinf(k[33 * D]) && k[33 * D] > 0);
  EXPECT_TRUE(std::isnan(v[3 * D]));
  EXPECT_EQ(v[4 * D], 2.0f) << "other groups are unaffected";
}

TEST(RuntimeAppend, StagedBackendStoresTheSameBytes) {
  for (size_t p = 0; p < numPresets(); ++p) {
    CacheHolder cpu(preset(p, KVC_RT_BACKEND_CPU));
    CacheHolder staged(preset(p, KVC_RT_BACKEND_CPU_STAGED));
    ASSERT_RT_OK(cpu.status());
    ASSERT_RT_OK(staged.status());
    kvc_rt_cache_config c;
    ASSERT_RT_OK(kvc_rt_cache_get_config(cpu, &c));
    const uint32_t N = c.max_tokens / 3;
    const std::vector<float> keys = randomTokens(c.kv_heads, N, c.head_dim, 11);
    const std::vector<float> values =
        randomTokens(c.kv_heads, N, c.head_dim, 12);
    kvc_rt_seq a, b;
    ASSERT_RT_OK(kvc_rt_sequence_create(cpu, &a));
    ASSERT_RT_OK(kvc_rt_sequence_create(staged, &b));
    for (uint32_t l = 0; l < c.num_layers; ++l) {
      for (uint32_t i = 0; i < N; i += 7) {
        kvc_rt_tokens t = sliceTokens(keys, values, c.kv_heads, N, c.head_dim,
                                      i, std::min(7u, N - i));
        ASSERT_RT_OK(kvc_rt_append(cpu, a, l, &t));
        ASSERT_RT_OK(kvc_rt_append(staged, b, l, &t));
      }
      EXPECT_EQ(pageBytes(cpu, a, l), pageBytes(staged, b, l));
      kvc_rt_layer_view va, vb;
      ASSERT_RT_OK(kvc_rt_layer_view_get(cpu, l, &va));
      ASSERT_RT_OK(kvc_rt_layer_view_get(staged, l, &vb));
      EXPECT_EQ(va.page_tables, va.page_tables_device);
      EXPECT_NE(vb.page_tables, vb.page_tables_device) << "a mirror";
      for (uint32_t h = 0; h < c.kv_heads; ++h) {
        std::vector<float> ka(N * c.head_dim), kb(N * c.head_dim);
        ASSERT_RT_OK(kvc_rt_gather(cpu, a, l, h, ka.data(), nullptr, N));
        ASSERT_RT_OK(kvc_rt_gather(staged, b, l, h, kb.data(), nullptr, N));
        EXPECT_TRUE(sameBits(ka, kb));
      }
    }
  }
}

TEST(RuntimeAppend, PageTokenRangesCoverWhatTheWriterWrites) {
  const uint32_t CH = KVC_RT_AXIS_CHANNEL, TOK = KVC_RT_AXIS_TOKEN;
  const kvc_rt_side_encoding sides[] = {
      fp16Side(),           fp8Side(KVC_RT_FP8_E4M3), quantSide(2, CH, 32),
      quantSide(3, CH, 64), quantSide(4, TOK, 32),    quantSide(8, TOK, 64)};
  const uint32_t D = 64, T = 128;
  const std::vector<float> x = randomTokens(1, T, D, 5);
  for (const kvc_rt_side_encoding &s : sides) {
    const num::SideEncoding enc = side(s);
    const num::BlockLayout bl = num::computeBlockLayout(enc, D, T);
    const uint32_t g = enc.tokenGranularity();
    for (uint32_t first = 0; first < T; first += 32)
      for (uint32_t count = g; first + count <= T; count += 32) {
        if (first % g || count % g)
          continue;
        std::vector<uint8_t> block(bl.blockBytes, 0xCD);
        num::writePageTokens(x.data(), first, count, enc, D, T, block.data());
        kvc::rt::ByteRange codes, params;
        kvc::rt::pageTokenRanges(bl, T, first, count, &codes, &params);
        for (size_t i = 0; i < block.size(); ++i) {
          const bool inside =
              (i >= codes.offset && i < codes.offset + codes.bytes) ||
              (i >= params.offset && i < params.offset + params.bytes);
          if (!inside) {
            ASSERT_EQ(block[i], 0xCD)
                << enc.toString() << " first " << first << " count " << count
                << ": byte " << i << " written outside the ranges";
          }
        }
        EXPECT_EQ(codes.bytes, bl.codesBytes * count / T);
        EXPECT_EQ(params.bytes, bl.paramsBytes * count / T);
      }
  }
}

TEST(RuntimeAppend, ViewsAddressThePagesDirectly) {
  const kvc_rt_encoding enc = kivi2(64);
  CacheHolder cache(simpleConfig(enc));
  ASSERT_RT_OK(cache.status());
  const uint32_t H = 2, D = 64, N = 300;
  const std::vector<float> keys = randomTokens(H, N, D, 21);
  const std::vector<float> values = randomTokens(H, N, D, 22);
  kvc_rt_seq other, seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &other));
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  kvc_rt_tokens t = sliceTokens(keys, values, H, N, D, 0, 70);
  ASSERT_RT_OK(kvc_rt_append(cache, other, 0, &t)); // interleave the pools
  t = sliceTokens(keys, values, H, N, D, 0, N);
  ASSERT_RT_OK(kvc_rt_append(cache, seq, 0, &t));

  kvc_rt_layer_view lv;
  kvc_rt_sequence_view sv;
  ASSERT_RT_OK(kvc_rt_layer_view_get(cache, 0, &lv));
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, seq, 0, &sv));
  EXPECT_EQ(sv.num_pages, 4u); // 256 compressed tokens
  EXPECT_EQ(sv.residual_tokens, 44u);
  EXPECT_EQ(lv.max_pages_per_sequence, 8u);
  EXPECT_EQ(sv.page_table, lv.page_tables + size_t{sv.slot} * 8);
  EXPECT_EQ(lv.page_tables[size_t{sv.slot} * 8 + sv.num_pages], -1);
  EXPECT_EQ(lv.k.block_bytes, 1024u + 512u) << "2-bit channel, D=64, T=64";
  EXPECT_EQ(lv.k.page_bytes, 2 * lv.k.block_bytes);
  EXPECT_EQ(lv.residual_head_bytes, 64u * 64 * 2);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(lv.k_pool) % 16, 0u);
  for (uint32_t i = 0; i < sv.num_pages; ++i)
    for (uint32_t h = 0; h < H; ++h) {
      const uint8_t *direct = static_cast<const uint8_t *>(sv.k_pool) +
                              size_t(sv.page_table[i]) * sv.k.page_bytes +
                              size_t{h} * sv.k.block_bytes;
      std::vector<uint8_t> copy(sv.k.block_bytes);
      ASSERT_RT_OK(kvc_rt_read_block(cache, 0, sv.page_table[i], h,
                                     KVC_RT_POOL_K, copy.data(), copy.size()));
      EXPECT_EQ(std::memcmp(direct, copy.data(), copy.size()), 0);
      // Dequantizing straight from the pool is what compiled loops do.
      std::vector<float> deq(64 * D);
      num::readPageTokens(direct, 0, 64, side(enc.key), D, 64, deq.data());
      std::vector<float> all(N * D);
      ASSERT_RT_OK(kvc_rt_gather(cache, seq, 0, h, all.data(), nullptr, N));
      EXPECT_EQ(std::memcmp(deq.data(), all.data() + size_t{i} * 64 * D,
                            deq.size() * 4),
                0);
    }
  // Residual token 256 + i of head h is row i of its staging buffer.
  const uint16_t *residual = static_cast<const uint16_t *>(sv.v_residual) +
                             sv.residual_head_bytes / 2; // head 1
  EXPECT_EQ(residual[5 * D + 3], num::floatToHalf(values[(1 * N + 261) * D + 3]));
  uint8_t small[16];
  EXPECT_RT(KVC_RT_ERROR_CAPACITY_EXCEEDED,
            kvc_rt_read_block(cache, 0, 0, 0, KVC_RT_POOL_K, small, 16));
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_read_block(cache, 0, 0, 2, KVC_RT_POOL_K, small, 16));
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_read_block(cache, 0, 0, 0, 2, small, 16));
}

TEST(RuntimeAppend, ResidualZeroCompressesEveryToken) {
  const kvc_rt_encoding enc =
      makeEncoding(fp8Side(KVC_RT_FP8_E5M2), quantSide(2, KVC_RT_AXIS_TOKEN, 64), 0);
  CacheHolder cache(simpleConfig(enc));
  ASSERT_RT_OK(cache.status());
  const std::vector<float> keys = randomTokens(2, 70, 64, 31);
  const std::vector<float> values = randomTokens(2, 70, 64, 32);
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  for (uint32_t i = 0; i < 70; ++i) {
    kvc_rt_tokens t = sliceTokens(keys, values, 2, 70, 64, i, 1);
    ASSERT_RT_OK(kvc_rt_append(cache, seq, 0, &t));
  }
  kvc_rt_sequence_view v;
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, seq, 0, &v));
  EXPECT_EQ(v.compressed_tokens, 70u);
  EXPECT_EQ(v.num_pages, 2u);
  EXPECT_EQ(v.k_residual, nullptr);
  EXPECT_EQ(v.residual_head_bytes, 0u);
  for (uint32_t h = 0; h < 2; ++h)
    expectMatchesSpec(cache, seq, 0, enc, h, keys, values, 70, 70, 64);
}

TEST(RuntimeAppend, ExhaustedPoolsLeaveTheCacheUnchanged) {
  ModelConfig m = simpleConfig(kivi2(64));
  m.config.pages_per_layer = 6;
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  const std::vector<float> keys = randomTokens(2, 512, 64, 41);
  const std::vector<float> values = randomTokens(2, 512, 64, 42);
  kvc_rt_seq a, b;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &a));
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &b));
  kvc_rt_tokens t = sliceTokens(keys, values, 2, 512, 64, 0, 200);
  ASSERT_RT_OK(kvc_rt_append(cache, a, 0, &t)); // 3 pages
  t = sliceTokens(keys, values, 2, 512, 64, 0, 100);
  ASSERT_RT_OK(kvc_rt_append(cache, b, 0, &t)); // 1 page
  std::vector<float> before(200 * 64), after(200 * 64);
  ASSERT_RT_OK(kvc_rt_gather(cache, a, 0, 1, before.data(), nullptr, 200));
  const std::vector<uint8_t> bytesBefore = pageBytes(cache, a, 0);
  kvc_rt_layer_stats s0, s1;
  ASSERT_RT_OK(kvc_rt_layer_stats_get(cache, 0, &s0));

  t = sliceTokens(keys, values, 2, 512, 64, 200, 200); // needs 3 more pages
  EXPECT_RT(KVC_RT_ERROR_OUT_OF_MEMORY, kvc_rt_append(cache, a, 0, &t));
  EXPECT_NE(std::string(kvc_rt_last_error()).find("needs 3 new pages but only 2 of 6 are free"),
            std::string::npos)
      << kvc_rt_last_error();
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));
  ASSERT_RT_OK(kvc_rt_layer_stats_get(cache, 0, &s1));
  EXPECT_EQ(std::memcmp(&s0, &s1, sizeof(s0)), 0);
  uint64_t n;
  ASSERT_RT_OK(kvc_rt_sequence_length(cache, a, 0, &n));
  EXPECT_EQ(n, 200u);
  ASSERT_RT_OK(kvc_rt_gather(cache, a, 0, 1, after.data(), nullptr, 200));
  EXPECT_TRUE(sameBits(before, after));
  EXPECT_EQ(pageBytes(cache, a, 0), bytesBefore);

  ASSERT_RT_OK(kvc_rt_sequence_free(cache, b));
  ASSERT_RT_OK(kvc_rt_append(cache, a, 0, &t));
  expectMatchesSpec(cache, a, 0, kivi2(64), 0, keys, values, 512, 400, 64);
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, a));
}

TEST(RuntimeAppend, CapacityShapesAndEmptyAppends) {
  ModelConfig m = simpleConfig(kivi2(64));
  m.config.max_tokens = 100;
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  const std::vector<float> keys = randomTokens(2, 101, 64, 51);
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  kvc_rt_tokens t = sliceTokens(keys, keys, 2, 101, 64, 0, 101);
  EXPECT_RT(KVC_RT_ERROR_CAPACITY_EXCEEDED, kvc_rt_append(cache, seq, 0, &t));
  EXPECT_NE(std::string(kvc_rt_last_error()).find("max_tokens (100)"),
            std::string::npos);
  t.num_tokens = 100;
  ASSERT_RT_OK(kvc_rt_append(cache, seq, 0, &t));
  t.num_tokens = 1;
  EXPECT_RT(KVC_RT_ERROR_CAPACITY_EXCEEDED, kvc_rt_append(cache, seq, 0, &t));
  // Zero tokens: a no-op, but still validated; NULL data is fine.
  kvc_rt_tokens empty{};
  empty.kv_heads = 2;
  empty.head_dim = 64;
  ASSERT_RT_OK(kvc_rt_append(cache, seq, 0, &empty));
  empty.head_dim = 128;
  EXPECT_RT(KVC_RT_ERROR_SHAPE_MISMATCH, kvc_rt_append(cache, seq, 0, &empty));
  EXPECT_NE(std::string(kvc_rt_last_error()).find("dimension 128"),
            std::string::npos);
  empty.head_dim = 64;
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_append(cache, seq, 3, &empty));
  uint64_t n;
  ASSERT_RT_OK(kvc_rt_sequence_length(cache, seq, 0, &n));
  EXPECT_EQ(n, 100u);
}
