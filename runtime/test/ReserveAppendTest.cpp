//===- ReserveAppendTest.cpp - appends whose tokens the caller writes -----===//
//
// kvc_rt_reserve_append and kvc_rt_mlir_reserve_append: the runtime takes
// the pages and moves the counts, the caller (generated code) writes the
// tokens. Writing them by hand exactly as the header's contract says must
// give the bytes kvc_rt_append gives, and a failed reservation must leave
// nothing behind.
//
//===----------------------------------------------------------------------===//

#include "ModelDriver.h"
#include "ReservedWrite.h"
#include "TestUtil.h"
#include "kvc_runtime_binding.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <string>
#include <utility>

using namespace kvc::rt::testing;

namespace {

constexpr uint32_t H = 2, D = 64, T = 64;

/// One sequence's tokens, [H][N][D] per side.
struct SeqTokens {
  std::vector<float> keys, values;
};

uint64_t compressedOf(uint64_t n, uint32_t R) { return R ? n / R * R : n; }

/// n0, n1, c(n0), c(n1) of a range, comparable and printable.
std::vector<uint64_t> fields(const kvc_rt_append_range &r) {
  return {r.old_tokens, r.new_tokens, r.old_compressed, r.new_compressed};
}

/// Pool (or residual staging) of one side of a view.
const uint8_t *base(const kvc_rt_sequence_view &v, int side, bool staging) {
  return static_cast<const uint8_t *>(staging
                                          ? (side ? v.v_residual : v.k_residual)
                                          : (side ? v.v_pool : v.k_pool));
}

/// Both sides of pool page `page` of a view.
std::vector<uint8_t> pageBytes(const kvc_rt_sequence_view &v, int32_t page) {
  std::vector<uint8_t> bytes;
  for (int side = 0; side < 2; ++side) {
    const uint64_t size = side ? v.v.page_bytes : v.k.page_bytes;
    const uint8_t *p = base(v, side, false) + page * size;
    bytes.insert(bytes.end(), p, p + size);
  }
  return bytes;
}

/// Writes the reserved tokens [r.old_tokens, r.new_tokens) of `seq` (layer
/// 0) from `in` (N tokens a head) with the shared hand-written writer.
void writeReservedSlice(kvc_rt_cache *cache, kvc_rt_seq seq,
                        const kvc_rt_append_range &r, const SeqTokens &in,
                        uint32_t N) {
  const kvc_rt_tokens t =
      sliceTokens(in.keys, in.values, H, N, D, uint32_t(r.old_tokens),
                  uint32_t(r.new_tokens - r.old_tokens));
  ASSERT_EQ(writeReserved(cache, seq, 0, r, t), "");
}

/// Byte equality of (a, sa) and (b, sb) in layer 0: counts, every page of
/// both pools and the live residual rows of every head.
::testing::AssertionResult sameSequence(kvc_rt_cache *a, kvc_rt_seq sa,
                                        kvc_rt_cache *b, kvc_rt_seq sb) {
  kvc_rt_sequence_view va, vb;
  if (kvc_rt_sequence_view_get(a, sa, 0, &va) != KVC_RT_OK ||
      kvc_rt_sequence_view_get(b, sb, 0, &vb) != KVC_RT_OK)
    return ::testing::AssertionFailure() << "view: " << kvc_rt_last_error();
  if (va.num_tokens != vb.num_tokens || va.num_pages != vb.num_pages)
    return ::testing::AssertionFailure()
           << "n " << va.num_tokens << " vs " << vb.num_tokens << ", pages "
           << va.num_pages << " vs " << vb.num_pages;
  for (int v = 0; v < 2; ++v) {
    const char *name = v ? "V" : "K";
    const uint64_t bytes = v ? va.v.page_bytes : va.k.page_bytes;
    for (uint32_t i = 0; i < va.num_pages; ++i) {
      // Kernels follow the mirror (a copy of its own on CPU_STAGED).
      if (vb.page_table_device[i] != vb.page_table[i])
        return ::testing::AssertionFailure() << "stale mirror, page " << i;
      if (std::memcmp(base(va, v, false) + va.page_table[i] * bytes,
                      base(vb, v, false) + vb.page_table[i] * bytes, bytes))
        return ::testing::AssertionFailure() << name << " page " << i;
    }
    for (uint32_t h = 0; h < H && va.residual_tokens; ++h) {
      const uint64_t off = h * va.residual_head_bytes;
      if (std::memcmp(base(va, v, true) + off, base(vb, v, true) + off,
                      va.residual_tokens * D * 2))
        return ::testing::AssertionFailure() << name << " staging, head " << h;
    }
  }
  return ::testing::AssertionSuccess();
}

/// Everything a failed reservation must leave alone: counts, page tables
/// and the layer's page accounting.
std::vector<uint64_t> snapshot(kvc_rt_cache *cache,
                               const std::vector<kvc_rt_seq> &seqs) {
  std::vector<uint64_t> s;
  for (kvc_rt_seq seq : seqs) {
    kvc_rt_sequence_view v;
    EXPECT_EQ(kvc_rt_sequence_view_get(cache, seq, 0, &v), KVC_RT_OK);
    s.insert(s.end(), {v.num_tokens, v.compressed_tokens, v.num_pages});
    s.insert(s.end(), v.page_table, v.page_table + v.num_pages);
  }
  kvc_rt_layer_stats ls;
  EXPECT_EQ(kvc_rt_layer_stats_get(cache, 0, &ls), KVC_RT_OK);
  s.insert(s.end(), {ls.pages_used, ls.pages_free, ls.pages_shared, ls.tokens,
                     ls.compressed_tokens});
  return s;
}

void appendRandom(kvc_rt_cache *cache, kvc_rt_seq seq, uint32_t n,
                  unsigned seed) {
  const std::vector<float> x = randomTokens(H, n, D, seed);
  kvc_rt_tokens t = sliceTokens(x, x, H, n, D, 0, n);
  ASSERT_RT_OK(kvc_rt_append(cache, seq, 0, &t));
}

struct ContractCase {
  const char *name;
  kvc_rt_encoding enc;
};

const ContractCase kCases[] = {
    {"k2ch32_v4tok32_r32",
     makeEncoding(quantSide(2, KVC_RT_AXIS_CHANNEL, 32),
                  quantSide(4, KVC_RT_AXIS_TOKEN, 32), 32)},
    {"k3tok64_v2ch32_r64",
     makeEncoding(quantSide(3, KVC_RT_AXIS_TOKEN, 64),
                  quantSide(2, KVC_RT_AXIS_CHANNEL, 32), 64)},
    {"fp16_r64", makeEncoding(fp16Side(), fp16Side(), 64)},
    // R > T: one flush fills two pages.
    {"kivi2_r128", kivi2(128)},
    // R = 0: every token goes straight into a page, no staging.
    {"fp8_v4tok32_r0", makeEncoding(fp8Side(KVC_RT_FP8_E4M3),
                                    quantSide(4, KVC_RT_AXIS_TOKEN, 32), 0)},
};

class RuntimeReserveAppendContract
    : public ::testing::TestWithParam<std::tuple<size_t, uint32_t>> {};

} // namespace

TEST_P(RuntimeReserveAppendContract, HandWrittenTokensMatchAppend) {
  const kvc_rt_encoding enc = kCases[std::get<0>(GetParam())].enc;
  const uint32_t R = enc.residual, N = 448;
  const ModelConfig m = simpleConfig(enc, std::get<1>(GetParam()));
  CacheHolder a(m), b(m);
  ASSERT_RT_OK(a.status());
  ASSERT_RT_OK(b.status());
  std::vector<kvc_rt_seq> seqsA(2), seqsB(2);
  std::vector<SeqTokens> in;
  std::vector<uint32_t> n(2, 0);
  for (unsigned s = 0; s < 2; ++s) {
    ASSERT_RT_OK(kvc_rt_sequence_create(a, &seqsA[s]));
    ASSERT_RT_OK(kvc_rt_sequence_create(b, &seqsB[s]));
    in.push_back(
        {randomTokens(H, N, D, 10 + s), randomTokens(H, N, D, 20 + s)});
  }
  // Sequence 1 starts 5 tokens ahead, so the two flush at different steps.
  kvc_rt_tokens t = sliceTokens(in[1].keys, in[1].values, H, N, D, 0, 5);
  ASSERT_RT_OK(kvc_rt_append(a, seqsA[1], 0, &t));
  ASSERT_RT_OK(kvc_rt_append(b, seqsB[1], 0, &t));
  n[1] = 5;

  // Mostly single tokens (decode), now and then a chunk (prefill).
  const uint32_t chunks[] = {3, 17, 64, 40, 100};
  bool forked = false;
  unsigned steps = 0, flushes = 0;
  for (unsigned i = 0;; ++i) {
    const uint32_t k = i % 16 == 15 ? chunks[i / 16 % 5] : 1;
    if (*std::max_element(n.begin(), n.end()) + k > N)
      break;
    // A fork whose last page is partially filled (when R allows it): the
    // child's first flush copies that page.
    if (!forked && n[0] >= 100 &&
        (compressedOf(n[0], R) % T != 0 || n[0] >= 200)) {
      forked = true;
      seqsA.push_back(0);
      seqsB.push_back(0);
      ASSERT_RT_OK(kvc_rt_sequence_fork(a, seqsA[0], &seqsA.back()));
      ASSERT_RT_OK(kvc_rt_sequence_fork(b, seqsB[0], &seqsB.back()));
      // The child's own tokens differ from the parent's after the fork.
      SeqTokens child = in[0];
      for (uint32_t h = 0; h < H; ++h)
        for (size_t j = size_t{n[0]} * D; j < size_t{N} * D; ++j) {
          child.keys[h * N * D + j] *= -0.5f;
          child.values[h * N * D + j] += 1.0f;
        }
      in.push_back(std::move(child));
      n.push_back(n[0]);
    }
    const uint32_t count = uint32_t(seqsB.size());
    for (uint32_t s = 0; s < count; ++s) {
      t = sliceTokens(in[s].keys, in[s].values, H, N, D, n[s], k);
      ASSERT_RT_OK(kvc_rt_append(a, seqsA[s], 0, &t)) << "step " << i;
    }
    std::vector<kvc_rt_append_range> ranges(count);
    ASSERT_RT_OK(
        kvc_rt_reserve_append(b, 0, seqsB.data(), count, k, ranges.data()))
        << "step " << i;
    for (uint32_t s = 0; s < count; ++s) {
      const kvc_rt_append_range &r = ranges[s];
      ASSERT_EQ(fields(r),
                (std::vector<uint64_t>{n[s], n[s] + k, compressedOf(n[s], R),
                                       compressedOf(n[s] + k, R)}))
          << "step " << i << " seq " << s;
      flushes += r.new_compressed > r.old_compressed;
      writeReservedSlice(b, seqsB[s], r, in[s], N);
      n[s] += k;
    }
    for (uint32_t s = 0; s < count; ++s)
      ASSERT_TRUE(sameSequence(a, seqsA[s], b, seqsB[s]))
          << "step " << i << " (+" << k << ") seq " << s << " n " << n[s];
    ++steps;
  }
  EXPECT_TRUE(forked);
  EXPECT_GE(steps, 100u);
  EXPECT_GE(flushes, 6u);
  EXPECT_GE(n[0], 350u);
  // Same page accounting as the appends (copy-on-write included).
  EXPECT_EQ(snapshot(b, {}), snapshot(a, {}));
}

// The prefix keeps --gtest_filter='RuntimeReserveAppend*' matching.
INSTANTIATE_TEST_SUITE_P(
    RuntimeReserveAppend, RuntimeReserveAppendContract,
    ::testing::Combine(::testing::Range<size_t>(0, std::size(kCases)),
                       ::testing::Values(uint32_t(KVC_RT_BACKEND_CPU),
                                         uint32_t(KVC_RT_BACKEND_CPU_STAGED))),
    [](const auto &info) {
      return std::string(kCases[std::get<0>(info.param)].name) +
             (std::get<1>(info.param) == KVC_RT_BACKEND_CPU ? "_cpu"
                                                            : "_staged");
    });

TEST(RuntimeReserveAppend, AllOrNoneAndErrors) {
  // Three pages, at most two a sequence.
  ModelConfig m = simpleConfig(kivi2(64));
  m.config.pages_per_layer = 3;
  m.config.max_tokens = 128;
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq a, b, full, freed;
  for (kvc_rt_seq *s : {&a, &b, &full, &freed})
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, s));
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, freed));
  appendRandom(cache, full, 128, 1); // two pages, at max_tokens
  appendRandom(cache, a, 60, 2);
  appendRandom(cache, b, 60, 3);
  const std::vector<kvc_rt_seq> live = {a, b, full};
  const std::vector<uint64_t> before = snapshot(cache, live);
  kvc_rt_append_range out[3] = {};
  auto fails = [&](kvc_rt_status expected, uint32_t layer,
                   std::vector<kvc_rt_seq> batch, uint32_t k) {
    EXPECT_RT(expected, kvc_rt_reserve_append(cache, layer, batch.data(),
                                              uint32_t(batch.size()), k, out));
    EXPECT_EQ(snapshot(cache, live), before) << kvc_rt_status_name(expected);
  };
  // Each needs a page for its flush and one is free: a would fit alone.
  fails(KVC_RT_ERROR_OUT_OF_MEMORY, 0, {a, b}, 4);
  fails(KVC_RT_ERROR_INVALID_ARGUMENT, 0, {a, b, a}, 1);
  fails(KVC_RT_ERROR_CAPACITY_EXCEEDED, 0, {a, full}, 1);
  fails(KVC_RT_ERROR_INVALID_SEQUENCE, 0, {a, freed}, 1);
  fails(KVC_RT_ERROR_INVALID_ARGUMENT, 1, {a}, 1);
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_reserve_append(cache, 0, nullptr, 1, 1, out));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_reserve_append(cache, 0, &a, 1, 1, nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_reserve_append(nullptr, 0, &a, 1, 1, out));
  EXPECT_RT(KVC_RT_OK, kvc_rt_reserve_append(cache, 0, nullptr, 0, 1, nullptr));
  EXPECT_EQ(snapshot(cache, live), before);

  // No tokens: the current counts, nothing reserved (even at max_tokens).
  ASSERT_RT_OK(kvc_rt_reserve_append(cache, 0, live.data(), 3, 0, out));
  EXPECT_EQ(fields(out[0]), (std::vector<uint64_t>{60, 60, 0, 0}));
  EXPECT_EQ(fields(out[1]), (std::vector<uint64_t>{60, 60, 0, 0}));
  EXPECT_EQ(fields(out[2]), (std::vector<uint64_t>{128, 128, 128, 128}));
  EXPECT_EQ(snapshot(cache, live), before);

  // Alone, b fits: the pool was the only obstacle.
  ASSERT_RT_OK(kvc_rt_reserve_append(cache, 0, &b, 1, 4, out));
  EXPECT_EQ(fields(out[0]), (std::vector<uint64_t>{60, 64, 0, 64}));
  kvc_rt_layer_stats ls;
  ASSERT_RT_OK(kvc_rt_layer_stats_get(cache, 0, &ls));
  EXPECT_EQ(ls.pages_free, 0u);
  EXPECT_EQ(ls.tokens, 60u + 64u + 128u);
}

TEST(RuntimeReserveAppend, BatchLargerThanMaxSequences) {
  CacheHolder cache(simpleConfig(kivi2(64))); // max_sequences = 4
  ASSERT_RT_OK(cache.status());
  std::vector<kvc_rt_seq> seqs(4);
  for (unsigned s = 0; s < 4; ++s) {
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seqs[s]));
    appendRandom(cache, seqs[s], 60, 8 + s);
  }
  const std::vector<uint64_t> before = snapshot(cache, seqs);
  // The count alone rejects the batch: nothing is allocated for UINT32_MAX
  // plans, and neither array is read past its one element.
  const kvc_rt_seq one = seqs[0];
  kvc_rt_append_range out[1] = {};
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_reserve_append(cache, 0, &one, UINT32_MAX, 4, out));
  EXPECT_NE(std::string(kvc_rt_last_error()).find("max_sequences (4)"),
            std::string::npos)
      << kvc_rt_last_error();
  EXPECT_EQ(snapshot(cache, seqs), before);
  // One past the bound: rejected for its size, not for the repeat.
  std::vector<kvc_rt_seq> five = seqs;
  five.push_back(seqs[0]);
  kvc_rt_append_range ranges[5] = {};
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_reserve_append(cache, 0, five.data(), 5, 4, ranges));
  EXPECT_NE(std::string(kvc_rt_last_error()).find("max_sequences (4)"),
            std::string::npos)
      << kvc_rt_last_error();
  EXPECT_EQ(snapshot(cache, seqs), before);
  // At the bound the batch is reserved (each flushes into a new page).
  ASSERT_RT_OK(kvc_rt_reserve_append(cache, 0, seqs.data(), 4, 4, ranges));
  for (unsigned s = 0; s < 4; ++s)
    EXPECT_EQ(fields(ranges[s]), (std::vector<uint64_t>{60, 64, 0, 64})) << s;
}

TEST(RuntimeReserveAppend, ForkedPartialPageIsCopiedOnWrite) {
  // R = 32 < T: after 40 tokens page 0 holds 32 and 8 are staged.
  CacheHolder cache(simpleConfig(kivi2(32)));
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq parent, child;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &parent));
  appendRandom(cache, parent, 40, 4);
  ASSERT_RT_OK(kvc_rt_sequence_fork(cache, parent, &child));
  kvc_rt_sequence_view pv, cv;
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, parent, 0, &pv));
  ASSERT_EQ(pv.num_pages, 1u);
  const int32_t shared = pv.page_table[0];
  const std::vector<uint8_t> original = pageBytes(pv, shared);

  // 24 more tokens flush [32, 64) into the shared page.
  kvc_rt_append_range r;
  ASSERT_RT_OK(kvc_rt_reserve_append(cache, 0, &child, 1, 24, &r));
  EXPECT_EQ(fields(r), (std::vector<uint64_t>{40, 64, 32, 64}));
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, child, 0, &cv));
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, parent, 0, &pv));
  ASSERT_EQ(cv.num_pages, 1u);
  EXPECT_NE(cv.page_table[0], shared);
  EXPECT_EQ(cv.page_table_device[0], cv.page_table[0]);
  EXPECT_EQ(pv.page_table[0], shared);
  EXPECT_EQ(pageBytes(cv, cv.page_table[0]), original);
  EXPECT_EQ(pageBytes(pv, shared), original);
  kvc_rt_layer_stats ls;
  ASSERT_RT_OK(kvc_rt_layer_stats_get(cache, 0, &ls));
  EXPECT_EQ(ls.pages_used, 2u);
  EXPECT_EQ(ls.pages_shared, 0u);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));

  // The parent is now the page's only owner: no copy.
  ASSERT_RT_OK(kvc_rt_reserve_append(cache, 0, &parent, 1, 24, &r));
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, parent, 0, &pv));
  EXPECT_EQ(pv.page_table[0], shared);
  ASSERT_RT_OK(kvc_rt_layer_stats_get(cache, 0, &ls));
  EXPECT_EQ(ls.pages_used, 2u);
}

TEST(RuntimeReserveAppend, ForkInOneBatchCopiesOnce) {
  // Page 0 holds the parent's first 32 tokens (R = 32) and 8 are staged when
  // it is forked; 24 more tokens flush [32, 64) of both into that page.
  const uint32_t N = 64, forked = 40, k = N - forked;
  for (uint32_t backend :
       {uint32_t(KVC_RT_BACKEND_CPU), uint32_t(KVC_RT_BACKEND_CPU_STAGED)})
    for (bool parentFirst : {true, false}) {
      SCOPED_TRACE(
          std::string(backend == KVC_RT_BACKEND_CPU ? "cpu" : "staged") +
          (parentFirst ? ", parent first" : ", child first"));
      // The shared page and one free page: two appends one after the other
      // take one copy, and so must the batch.
      ModelConfig m = simpleConfig(kivi2(32), backend);
      m.config.pages_per_layer = 2;
      // a appends one sequence after the other, b reserves both at once.
      CacheHolder a(m), b(m);
      ASSERT_RT_OK(a.status());
      ASSERT_RT_OK(b.status());
      // Parent, child; the child's tokens differ from the fork on.
      SeqTokens in[2];
      in[0] = {randomTokens(H, N, D, 30), randomTokens(H, N, D, 31)};
      in[1] = in[0];
      for (uint32_t h = 0; h < H; ++h)
        for (size_t j = size_t{forked} * D; j < size_t{N} * D; ++j) {
          in[1].keys[h * N * D + j] *= -0.5f;
          in[1].values[h * N * D + j] += 1.0f;
        }
      kvc_rt_seq seqsA[2], seqsB[2];
      for (auto [cache, seqs] :
           {std::pair(a.get(), seqsA), std::pair(b.get(), seqsB)}) {
        ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seqs[0]));
        kvc_rt_tokens t =
            sliceTokens(in[0].keys, in[0].values, H, N, D, 0, forked);
        ASSERT_RT_OK(kvc_rt_append(cache, seqs[0], 0, &t));
        ASSERT_RT_OK(kvc_rt_sequence_fork(cache, seqs[0], &seqs[1]));
      }
      const unsigned order[2] = {parentFirst ? 0u : 1u, parentFirst ? 1u : 0u};
      kvc_rt_sequence_view view[2];
      ASSERT_RT_OK(kvc_rt_sequence_view_get(b, seqsB[0], 0, &view[0]));
      ASSERT_EQ(view[0].num_pages, 1u);
      const int32_t shared = view[0].page_table[0];
      const std::vector<uint8_t> original = pageBytes(view[0], shared);

      const kvc_rt_seq batch[2] = {seqsB[order[0]], seqsB[order[1]]};
      kvc_rt_append_range r[2];
      ASSERT_RT_OK(kvc_rt_reserve_append(b, 0, batch, 2, k, r));
      for (unsigned i = 0; i < 2; ++i) {
        EXPECT_EQ(fields(r[i]), (std::vector<uint64_t>{40, 64, 32, 64})) << i;
        ASSERT_RT_OK(kvc_rt_sequence_view_get(b, batch[i], 0, &view[i]));
        ASSERT_EQ(view[i].num_pages, 1u);
        EXPECT_EQ(view[i].page_table_device[0], view[i].page_table[0]) << i;
      }
      // The first owner in the batch copies, the last writes in place.
      EXPECT_NE(view[0].page_table[0], shared);
      EXPECT_EQ(pageBytes(view[0], view[0].page_table[0]), original);
      EXPECT_EQ(view[1].page_table[0], shared);
      kvc_rt_layer_stats ls;
      ASSERT_RT_OK(kvc_rt_layer_stats_get(b, 0, &ls));
      EXPECT_EQ(ls.pages_used, 2u);
      EXPECT_EQ(ls.pages_free, 0u);
      EXPECT_EQ(ls.pages_shared, 0u);
      EXPECT_EQ(ls.tokens, 2u * N);
      EXPECT_EQ(ls.compressed_tokens, 2u * N);
      ASSERT_RT_OK(kvc_rt_cache_verify(b));

      // The same bytes as two appends in the batch's order.
      for (unsigned s : order) {
        kvc_rt_tokens t =
            sliceTokens(in[s].keys, in[s].values, H, N, D, forked, k);
        ASSERT_RT_OK(kvc_rt_append(a, seqsA[s], 0, &t));
      }
      for (unsigned i = 0; i < 2; ++i)
        writeReservedSlice(b, batch[i], r[i], in[order[i]], N);
      for (unsigned s = 0; s < 2; ++s)
        EXPECT_TRUE(sameSequence(a, seqsA[s], b, seqsB[s])) << s;
      EXPECT_EQ(snapshot(b, {}), snapshot(a, {}));
    }
}

namespace {
class RuntimeReserveAppendBinding : public ::testing::TestWithParam<uint32_t> {
};
} // namespace

TEST_P(RuntimeReserveAppendBinding, RecordsDescribeTheReservation) {
  CacheHolder cache(simpleConfig(kivi2(64), GetParam()));
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seqs[2];
  for (kvc_rt_seq &s : seqs)
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &s));
  appendRandom(cache, seqs[0], 62, 5);
  appendRandom(cache, seqs[1], 10, 6);
  kvc_rt_binding *binding = nullptr;
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, seqs, 2, &binding));

  const kvc_rt_gpu_append *records = kvc_rt_mlir_reserve_append(binding, 3);
  ASSERT_NE(records, nullptr) << kvc_rt_binding_error(binding);
  EXPECT_EQ(uintptr_t(records) % 256, 0u);
  // n1, c(n1), n0, c(n0) of each entry.
  const std::vector<uint64_t> expected[2] = {{65, 64, 62, 0}, {13, 0, 10, 0}};
  for (int b = 0; b < 2; ++b) {
    SCOPED_TRACE(b);
    const kvc_rt_gpu_append &rec = records[b];
    EXPECT_EQ((std::vector<uint64_t>{rec.sequence.num_tokens,
                                     rec.sequence.compressed_tokens,
                                     rec.old_tokens, rec.old_compressed}),
              expected[b]);
    kvc_rt_sequence_view view;
    ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, seqs[b], 0, &view));
    EXPECT_EQ(view.num_tokens, expected[b][0]);
    EXPECT_EQ(rec.sequence.page_table,
              uint64_t(uintptr_t(view.page_table_device)));
    EXPECT_EQ(rec.sequence.k_residual, uint64_t(uintptr_t(view.k_residual)));
    EXPECT_EQ(rec.sequence.v_residual, uint64_t(uintptr_t(view.v_residual)));
  }

  // Bad counts are rejected, and the error sticks.
  const std::vector<uint64_t> before = snapshot(cache, {seqs[0], seqs[1]});
  EXPECT_EQ(kvc_rt_mlir_reserve_append(binding, -1), nullptr);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kvc_rt_mlir_reserve_append(binding, 3), nullptr);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_ARGUMENT);
  kvc_rt_binding_clear_error(binding);
  EXPECT_EQ(kvc_rt_mlir_reserve_append(binding, int64_t(UINT32_MAX) + 1),
            nullptr);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(snapshot(cache, {seqs[0], seqs[1]}), before);
  kvc_rt_binding_destroy(binding);

  // A pool of one page cannot flush both sequences at once.
  ModelConfig small = simpleConfig(kivi2(64), GetParam());
  small.config.pages_per_layer = 1;
  CacheHolder tight(small);
  ASSERT_RT_OK(tight.status());
  for (kvc_rt_seq &s : seqs) {
    ASSERT_RT_OK(kvc_rt_sequence_create(tight, &s));
    appendRandom(tight, s, 62, 7);
  }
  ASSERT_RT_OK(kvc_rt_binding_create(tight, 0, seqs, 2, &binding));
  const std::vector<uint64_t> tightBefore = snapshot(tight, {seqs[0], seqs[1]});
  EXPECT_EQ(kvc_rt_mlir_reserve_append(binding, 3), nullptr);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_OUT_OF_MEMORY)
      << kvc_rt_binding_error(binding);
  EXPECT_EQ(snapshot(tight, {seqs[0], seqs[1]}), tightBefore);
  kvc_rt_binding_clear_error(binding);
  // Without a flush it fits.
  records = kvc_rt_mlir_reserve_append(binding, 1);
  ASSERT_NE(records, nullptr) << kvc_rt_binding_error(binding);
  EXPECT_EQ(records[1].sequence.num_tokens, 63u);
  EXPECT_EQ(records[1].old_tokens, 62u);
  kvc_rt_binding_destroy(binding);
}

INSTANTIATE_TEST_SUITE_P(
    RuntimeReserveAppend, RuntimeReserveAppendBinding,
    ::testing::Values(uint32_t(KVC_RT_BACKEND_CPU),
                      uint32_t(KVC_RT_BACKEND_CPU_STAGED)));
