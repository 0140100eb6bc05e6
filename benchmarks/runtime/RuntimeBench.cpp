//===- RuntimeBench.cpp - kvc runtime throughput and metadata overhead ----===//
//
//   kvc_runtime_bench [--quick]
//
// 1. Page allocation cost against pool size (1k .. 1M pages): the free list
//    alone (PagePool), and through the C API (an append that takes a fresh
//    page, and the free that returns it). O(1) means flat rows.
// 2. C API operations per second on one Llama-3-8B-like layer (8 kv heads of
//    128, 64-token pages, KIVI-2 with R = 128): create/free, decode appends,
//    prefill appends, fork/free of a 2100-token sequence, the copy-on-write
//    append after a fork, gather.
// 3. Metadata per KV byte for 32 such layers at several page sizes: host
//    bookkeeping plus the device page-table mirror, against pool + staging.
// Prints the summary table last. Timings are wall-clock, single-threaded,
// CPU backend (pages in host memory).
//
//===----------------------------------------------------------------------===//

#include "PagePool.h"
#include "kvc_runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {
using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void require(kvc_rt_status s, const char *what) {
  if (s != KVC_RT_OK) {
    std::fprintf(stderr, "%s: %s: %s\n", what, kvc_rt_status_name(s),
                 kvc_rt_last_error());
    std::exit(1);
  }
}

struct Row {
  std::string name;
  std::string value;
  std::string unit;
};
std::vector<Row> summary;

void record(const std::string &name, double value, const char *unit,
            int precision = 2) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", precision, value);
  summary.push_back({name, buf, unit});
  std::printf("  %-52s %14s %s\n", name.c_str(), buf, unit);
}

kvc_rt_encoding kivi2(uint32_t residual) {
  kvc_rt_encoding e{};
  e.key.kind = KVC_RT_SIDE_QUANT;
  e.key.bits = 2;
  e.key.axis = KVC_RT_AXIS_CHANNEL;
  e.key.group = 32;
  e.value.kind = KVC_RT_SIDE_QUANT;
  e.value.bits = 2;
  e.value.axis = KVC_RT_AXIS_TOKEN;
  e.value.group = 32;
  e.residual = residual;
  return e;
}

std::vector<float> randomValues(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float &x : v)
    x = normal(rng);
  return v;
}

kvc_rt_tokens tokens(const std::vector<float> &x, uint32_t heads,
                     uint32_t dim, uint32_t count) {
  kvc_rt_tokens t{};
  t.keys = x.data();
  t.values = x.data();
  t.num_tokens = count;
  t.dtype = KVC_RT_DTYPE_F32;
  t.kv_heads = heads;
  t.head_dim = dim;
  return t;
}

//===----------------------------------------------------------------------===//
// 1. Page allocation against pool size
//===----------------------------------------------------------------------===//

void freeListScaling(const std::vector<uint32_t> &sizes, uint64_t ops) {
  std::printf("free list (PagePool): allocate + release pairs, pool 3/4 "
              "full and scrambled\n");
  for (uint32_t size : sizes) {
    kvc::rt::PagePool pool;
    if (!pool.init(size).isOk())
      std::exit(1);
    // Fill 3/4 of the pool, release a random half: the free list is then a
    // shuffled mix, as after a long serving run.
    std::mt19937 rng(size);
    std::vector<int32_t> held;
    for (uint32_t i = 0; i < size / 4 * 3; ++i)
      held.push_back(pool.allocate());
    std::shuffle(held.begin(), held.end(), rng);
    for (size_t i = 0; i < held.size() / 2; ++i)
      pool.release(held[i]);
    held.erase(held.begin(), held.begin() + held.size() / 2);
    // Timed: bursts of 64 allocations, released in a shuffled order.
    std::vector<int32_t> burst(64);
    uint64_t done = 0;
    const auto start = Clock::now();
    while (done < ops) {
      for (int32_t &p : burst)
        p = pool.allocate();
      std::shuffle(burst.begin(), burst.end(), rng);
      for (int32_t p : burst)
        pool.release(p);
      done += burst.size();
    }
    const double s = seconds(start, Clock::now());
    record("free list alloc+release, pool " + std::to_string(size) + " pages",
           done / s / 1e6, "M pairs/s");
  }
}

void apiPageScaling(const std::vector<uint32_t> &sizes, uint64_t pagesPerSize) {
  std::printf("C API: append of 64 tokens that takes a fresh page, and the "
              "free that returns 16 pages (1 layer, 1 head, D = 32, KIVI-2, "
              "R = T = 64)\n");
  const uint32_t D = 32, T = 64;
  const std::vector<float> x = randomValues(size_t{T} * D, 3);
  for (uint32_t size : sizes) {
    const kvc_rt_encoding enc = kivi2(64);
    kvc_rt_cache_config c;
    kvc_rt_config_init(&c);
    c.num_layers = 1;
    c.kv_heads = 1;
    c.head_dim = D;
    c.page_tokens = T;
    c.max_tokens = 16 * T;
    c.max_sequences = size / 16 + 1;
    c.pages_per_layer = size;
    c.encodings = &enc;
    kvc_rt_cache *cache;
    require(kvc_rt_cache_create(&c, &cache), "create");
    // Rounds of up to 16384 pages (every page of the smaller pools), then
    // everything is freed in a random order. Filling the 1M pool through
    // appends would take minutes of compression; the free-list rows above
    // cover large, scrambled pools.
    const uint64_t round = std::min<uint64_t>(size, 16384);
    std::vector<kvc_rt_seq> seqs;
    auto fill = [&](uint64_t *appends, double *appendSeconds) {
      kvc_rt_tokens t = tokens(x, 1, D, T);
      for (uint64_t taken = 0; taken < round;) {
        kvc_rt_seq s;
        if (kvc_rt_sequence_create(cache, &s) != KVC_RT_OK)
          return;
        seqs.push_back(s);
        for (int i = 0; i < 16; ++i) {
          const auto a = Clock::now();
          const kvc_rt_status st = kvc_rt_append(cache, s, 0, &t);
          const auto b = Clock::now();
          if (st != KVC_RT_OK)
            return;
          *appendSeconds += seconds(a, b);
          ++*appends;
          ++taken;
        }
      }
    };
    auto drain = [&](uint64_t *frees, double *freeSeconds) {
      std::shuffle(seqs.begin(), seqs.end(), std::mt19937(size));
      const auto a = Clock::now();
      for (kvc_rt_seq s : seqs)
        require(kvc_rt_sequence_free(cache, s), "free");
      *freeSeconds += seconds(a, Clock::now());
      *frees += seqs.size();
      seqs.clear();
    };
    uint64_t appends = 0, frees = 0;
    double appendSeconds = 0, freeSeconds = 0;
    while (appends < pagesPerSize) {
      fill(&appends, &appendSeconds);
      drain(&frees, &freeSeconds);
    }
    record("append taking a page, pool " + std::to_string(size) + " pages",
           appends / appendSeconds / 1e3, "k ops/s");
    record("free of 16 pages, pool " + std::to_string(size) + " pages",
           frees / freeSeconds / 1e3, "k ops/s");
    require(kvc_rt_cache_destroy(cache), "destroy");
  }
}

//===----------------------------------------------------------------------===//
// 2. C API operations on a Llama-like layer
//===----------------------------------------------------------------------===//

void apiOperations(bool quick) {
  const uint32_t H = 8, D = 128, T = 64;
  std::printf("C API on one layer: %u kv heads, D = %u, T = %u, KIVI-2 "
              "(2-bit K per channel, 2-bit V per token, G = 32), R = 128\n",
              H, D, T);
  const kvc_rt_encoding enc = kivi2(128);
  kvc_rt_cache_config c;
  kvc_rt_config_init(&c);
  c.num_layers = 1;
  c.kv_heads = H;
  c.head_dim = D;
  c.page_tokens = T;
  c.max_sequences = 256;
  c.max_tokens = 4096;
  c.pages_per_layer = 256 * 64;
  c.encodings = &enc;
  kvc_rt_cache *cache;
  require(kvc_rt_cache_create(&c, &cache), "create");

  {
    const int n = quick ? 100000 : 1000000;
    const auto a = Clock::now();
    for (int i = 0; i < n; ++i) {
      kvc_rt_seq s;
      require(kvc_rt_sequence_create(cache, &s), "create");
      require(kvc_rt_sequence_free(cache, s), "free");
    }
    record("sequence create + free (empty)", n / seconds(a, Clock::now()) / 1e6,
           "M pairs/s");
  }

  const uint32_t decodeSeqs = 32, decodeTokens = quick ? 512 : 2048;
  std::vector<kvc_rt_seq> seqs(decodeSeqs);
  for (kvc_rt_seq &s : seqs)
    require(kvc_rt_sequence_create(cache, &s), "create");
  {
    const std::vector<float> x = randomValues(size_t{H} * D, 5);
    kvc_rt_tokens t = tokens(x, H, D, 1);
    const auto a = Clock::now();
    for (uint32_t i = 0; i < decodeTokens; ++i)
      for (kvc_rt_seq s : seqs)
        require(kvc_rt_append(cache, s, 0, &t), "decode append");
    const double s = seconds(a, Clock::now());
    record("decode append (1 token, flush every 128)",
           decodeSeqs * decodeTokens / s / 1e3, "k ops/s");
  }
  for (kvc_rt_seq s : seqs)
    require(kvc_rt_sequence_free(cache, s), "free");
  {
    const uint32_t prefill = 2048, count = quick ? 4 : 32;
    const std::vector<float> x = randomValues(size_t{H} * prefill * D, 6);
    kvc_rt_tokens t = tokens(x, H, D, prefill);
    const auto a = Clock::now();
    for (uint32_t i = 0; i < count; ++i) {
      kvc_rt_seq s;
      require(kvc_rt_sequence_create(cache, &s), "create");
      require(kvc_rt_append(cache, s, 0, &t), "prefill append");
      seqs[i] = s;
    }
    const double s = seconds(a, Clock::now());
    record("prefill append (2048 tokens at once)", count * prefill / s / 1e3,
           "k tokens/s");
    for (uint32_t i = 0; i < count; ++i)
      require(kvc_rt_sequence_free(cache, seqs[i]), "free");
  }
  {
    // A 2100-token parent: 2048 compressed (32 pages) + 52 residual rows.
    const std::vector<float> x = randomValues(size_t{H} * 2100 * D, 7);
    kvc_rt_tokens t = tokens(x, H, D, 2100);
    kvc_rt_seq parent;
    require(kvc_rt_sequence_create(cache, &parent), "create");
    require(kvc_rt_append(cache, parent, 0, &t), "append");
    const int n = quick ? 10000 : 100000;
    auto a = Clock::now();
    for (int i = 0; i < n; ++i) {
      kvc_rt_seq child;
      require(kvc_rt_sequence_fork(cache, parent, &child), "fork");
      require(kvc_rt_sequence_free(cache, child), "free");
    }
    record("fork + free (32 shared pages, 52 residual rows)",
           n / seconds(a, Clock::now()) / 1e3, "k pairs/s");

    // Copy-on-write needs a compressed boundary inside a page, i.e. R < T:
    // a second cache with R = 32. Parent: 2100 tokens -> 2080 compressed,
    // page 32 half full. Each child's 32-token append flushes into it.
    const kvc_rt_encoding enc32 = kivi2(32);
    kvc_rt_cache_config c32 = c;
    c32.encodings = &enc32;
    kvc_rt_cache *cow;
    require(kvc_rt_cache_create(&c32, &cow), "create");
    kvc_rt_seq cowParent;
    require(kvc_rt_sequence_create(cow, &cowParent), "create");
    require(kvc_rt_append(cow, cowParent, 0, &t), "append");
    const std::vector<float> more = randomValues(size_t{H} * 32 * D, 8);
    kvc_rt_tokens t32 = tokens(more, H, D, 32);
    const int m = quick ? 2000 : 20000;
    double cowSeconds = 0;
    for (int i = 0; i < m; ++i) {
      kvc_rt_seq child;
      require(kvc_rt_sequence_fork(cow, cowParent, &child), "fork");
      a = Clock::now();
      require(kvc_rt_append(cow, child, 0, &t32), "cow append");
      cowSeconds += seconds(a, Clock::now());
      require(kvc_rt_sequence_free(cow, child), "free");
    }
    record("append after fork (page copy + 32-token flush)",
           m / cowSeconds / 1e3, "k ops/s");
    require(kvc_rt_cache_verify(cow), "verify");
    require(kvc_rt_cache_destroy(cow), "destroy");

    std::vector<float> keys(size_t{2100} * D), values(keys.size());
    const int g = quick ? 100 : 1000;
    a = Clock::now();
    for (int i = 0; i < g; ++i)
      require(kvc_rt_gather(cache, parent, 0, i % H, keys.data(),
                            values.data(), 2100),
              "gather");
    record("gather (dequantize K and V of one head)",
           g * 2100.0 / seconds(a, Clock::now()) / 1e6, "M tokens/s");
    require(kvc_rt_sequence_free(cache, parent), "free");
  }
  require(kvc_rt_cache_verify(cache), "verify");
  require(kvc_rt_cache_destroy(cache), "destroy");
}

//===----------------------------------------------------------------------===//
// 3. Metadata overhead
//===----------------------------------------------------------------------===//

void metadataOverhead() {
  std::printf("metadata per KV byte: 32 layers x 8 kv heads x D = 128, "
              "KIVI-2 R = 128, sequences of 8192 tokens planned into "
              "40 GiB\n");
  std::vector<kvc_rt_encoding> encs(32, kivi2(128));
  for (uint32_t backend : {uint32_t(KVC_RT_BACKEND_CPU),
                           uint32_t(KVC_RT_BACKEND_CPU_STAGED)})
    for (uint32_t T : {32u, 64u, 128u, 256u}) {
      kvc_rt_cache_config c;
      kvc_rt_config_init(&c);
      c.backend = backend;
      c.num_layers = 32;
      c.kv_heads = 8;
      c.head_dim = 128;
      c.page_tokens = T;
      c.encodings = encs.data();
      kvc_rt_capacity_plan plan;
      require(kvc_rt_plan_capacity(&c, uint64_t(40) << 30, 8192, &plan),
              "plan");
      const kvc_rt_footprint &f = plan.footprint;
      const double kv = double(f.pool_bytes + f.staging_bytes);
      const double mirror =
          double(f.backend_bytes - f.pool_bytes - f.staging_bytes);
      const double meta = double(f.host_metadata_bytes) + mirror;
      char name[128];
      std::snprintf(name, sizeof(name),
                    "metadata / KV bytes, T = %u%s (%u seqs)", T,
                    backend == KVC_RT_BACKEND_CPU ? "" : ", with mirror",
                    plan.max_sequences);
      record(name, 100.0 * meta / kv, "%", 4);
    }
}
} // namespace

int main(int argc, char **argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const std::vector<uint32_t> sizes = {1000, 10000, 100000, 1000000};
  freeListScaling(sizes, quick ? 2000000 : 20000000);
  apiPageScaling(sizes, quick ? 20000 : 100000);
  apiOperations(quick);
  metadataOverhead();

  std::printf("\n| measurement | value | unit |\n|---|---:|---|\n");
  for (const Row &r : summary)
    std::printf("| %s | %s | %s |\n", r.name.c_str(), r.value.c_str(),
                r.unit.c_str());
  return 0;
}
