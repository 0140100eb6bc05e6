//===- attention_bench.cpp - Decode-attention time of kvc's GPU kernels ---===//
//
// Times the decode-attention variants of benchmarks/gpu/bench_variants.py
// (Llama-3-8B attention: 32 query heads over 8 KV heads of head_dim 128,
// batch 1, 8 and 32, one variant per encoding and batch), compiled by
// scripts/gpu_attention_build.sh and linked into this program, on
// CUDA-backend runtime caches.
//
// Per variant: one cache with B sequences, grown to each S of the command
// line in ascending order (all B sequences hold exactly S tokens) by
// kvc_rt_append of random fp16 tokens in chunks (the runtime's reference
// append; the token data does not change what the kernels read). Batch
// sizes go in ascending order, the caches of one batch size are filled
// together, one thread each (the host-side compression is most of the
// run's time). At each S, variant after variant:
//  - warm-up calls, then N calls timed with CUDA events on the cache's
//    stream (kvc_rt_cache_stream), where the generated host code launches
//    its kernels: before each, a memset of twice the L2 size on that stream
//    evicts the cache's pages from L2, then the start event; the end event
//    right after the call. The functions are compiled with
//    wait-on-return=false (scripts/gpu_attention_build.sh): a call returns
//    with its kernels enqueued, as in a decode loop, and the host enqueues
//    them while the memset runs, so the events measure the device time of
//    the call (split and combine kernels: the records are unchanged since
//    the first call, so not copied again, as in a decode step whose append
//    copied them), as sdpa_baseline.py's events measure SDPA's: "GPU us";
//  - N more calls, each after a flush and a stream synchronization, timed
//    by the host clock: until the call returns, "enqueue us" (layout
//    checks, runtime calls, launches: the host's share of a decode step),
//    and until kvc_rt_cache_synchronize after it returns, "call us" (what a
//    caller that waits for the output waits);
//  - a last call with the output poisoned (NaN bytes) must write a finite
//    output and leave the binding, the mgpu* record and CUDA clean, and,
//    where the variant reads the cache of an earlier one (its owner: the
//    same encoding without the kernel options, filled once) with the same
//    query heads, given the owner's queries, match the owner's output
//    within 2e-4 of its largest magnitude ("reference" in the JSON): a
//    configuration that is fast but wrong fails its row;
//  - the variant's append twin over R one-token steps on forks of the
//    sequences (BenchAppend.h), each step timed like the attention calls:
//    "append GPU us" and "append enqueue us", the means per step.
// Bytes read are exact for the cache's state: the pages of the c(n)
// compressed tokens of every sequence (whole pages: c(n) is a multiple of
// the residual window, which the page size divides) with the block sizes of
// the numerics library's layout (checked against the runtime's), the fp16
// residual rows n - c(n) of every KV head, both sides, the f32 query and the
// f32 output. Page tables, records and the split workspace are not counted.
//
//   kvc_attention_bench [--artifacts DIR] [--only NAME[,NAME...]]
//                       [--batches B[,B...]] [--seed N]
//                       [--reps N] [--warmup N] [--peak-tbps X]
//                       [--json PATH] [--budget SECONDS] [S ...]
//
// DIR holds bench_manifest.txt; S defaults to 1024 4096 16384 32768;
// --batches runs the variants of those batch sizes only, one batch size
// after another in that order (default: every one, ascending), so that a
// budget cuts the last;
// --peak-tbps (default 3.35, H100 SXM HBM3) is the bandwidth the "% peak"
// column divides by; --budget stops starting new rows after that many
// seconds (the rows not run are listed, not failed). Prints a markdown table
// and "N passed, N failed"; --json writes every row (rewritten after each
// row, so a killed run keeps what it measured). Exits 1 on a failed row, 2
// on bad arguments or manifest, 77 without a CUDA device.
//
// Built with KVC_ATTENTION_HOST=1 and KVC_ATTENTION_EMULATED=1
// (kvc_attention_bench_emu) it runs the same kvc-gpu-pipeline code
// (format=llvm objects) on CPU caches with its kernels in kvc's GPU
// emulator: the generated host code and kernels of the GPU benchmark,
// checked to run and write finite outputs without a GPU (times mean
// nothing).
//
// Built with KVC_ATTENTION_HOST=1 (kvc_attention_bench_host) it runs the
// kvc-cpu-pipeline code of the same variants on CPU caches with host
// buffers and the host clock: a dry run of the fill, the bytes accounting,
// the table and the JSON, on any machine (its times mean nothing).
//
//===----------------------------------------------------------------------===//

#include "BenchAppend.h"
#include "BenchRows.h"
#include "BenchTiming.h"
#include "BenchVariant.h"
#include "CheckSupport.h"

#include "kvc_runtime.h"
#include "kvc_runtime_binding.h"

#include "kvc/Numerics/Encoding.h"
#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Layout.h"

#if KVC_ATTENTION_EMULATED
#include "kvc/GPUEmulator/Prefetches.h"
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace num = kvc::numerics;

/// Whether the program calls kvc-gpu-pipeline code (on a GPU or emulated).
constexpr bool kGPUPipelineCode = !KVC_ATTENTION_HOST || KVC_ATTENTION_EMULATED;

#ifndef KVC_BENCH_ARTIFACTS_DIR
#define KVC_BENCH_ARTIFACTS_DIR "build/gpu-attention/bench"
#endif

namespace {

using namespace kvc::gpucheck;
using Clock = std::chrono::steady_clock;

/// `_mlir_ciface_<name>(binding, q, out)`, as in attention_check.cpp.
using AttentionEntry = void (*)(kvc_rt_binding *, kvc_rt_memref_4d_f32 *,
                                kvc_rt_memref_4d_f32 *);

/// A row's output may differ from its reference's by at most this much,
/// relative to the reference's largest magnitude: twice the GPU check's
/// tolerance against the fp64 oracle (attention_check.cpp), which each of
/// the two kernels meets.
constexpr double kReferenceTolerance = 2e-4;

/// Random fp16 tokens the sequences are filled from: [H][kPoolTokens][D]
/// keys (a few outlier channels, as real keys have) and values. Appending
/// windows of one pool keeps the fill cheap; every page is still a page of
/// its own in device memory.
constexpr uint32_t kPoolTokens = 4096, kChunkTokens = 1024;

struct TokenPool {
  std::vector<uint16_t> keys, values;
  void generate(const Variant &v, uint64_t seed) {
    const uint32_t D = v.headDim;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    keys.resize(size_t(v.kvHeads) * kPoolTokens * D);
    values.resize(keys.size());
    for (size_t e = 0; e < keys.size(); ++e) {
      const uint32_t c = uint32_t(e % D);
      const bool outlier = c == 1 || c == D / 3 || c == D - 2;
      keys[e] = num::floatToHalf(normal(rng) * (outlier ? 12.0f : 1.0f) +
                                 (outlier ? 6.0f : 0.0f));
      values[e] = num::floatToHalf(normal(rng));
    }
  }
};

/// Grows every sequence to S tokens, a chunk at a time round-robin over the
/// sequences (so that their pages interleave in the pools, as in serving).
std::string grow(kvc_rt_cache *cache, const std::vector<kvc_rt_seq> &seqs,
                 std::vector<uint32_t> &lengths, uint32_t S,
                 const TokenPool &pool, const Variant &v) {
  for (bool more = true; more;) {
    more = false;
    for (size_t b = 0; b < seqs.size(); ++b) {
      if (lengths[b] >= S)
        continue;
      const uint32_t count = std::min(kChunkTokens, S - lengths[b]);
      // A window of the pool that differs between sequences and chunks.
      const size_t first =
          (size_t(lengths[b]) + 977 * b) % (kPoolTokens - kChunkTokens + 1);
      kvc_rt_tokens tokens{};
      tokens.keys = pool.keys.data() + first * v.headDim;
      tokens.values = pool.values.data() + first * v.headDim;
      tokens.num_tokens = count;
      tokens.dtype = KVC_RT_DTYPE_F16;
      tokens.kv_heads = v.kvHeads;
      tokens.head_dim = v.headDim;
      tokens.head_stride = uint64_t(kPoolTokens) * v.headDim;
      tokens.token_stride = v.headDim;
      if (kvc_rt_append(cache, seqs[b], 0, &tokens) != KVC_RT_OK)
        return runtimeError("kvc_rt_append");
      lengths[b] += count;
      more |= lengths[b] < S;
    }
  }
  return kvc_rt_cache_synchronize(cache) == KVC_RT_OK
             ? ""
             : runtimeError("kvc_rt_cache_synchronize");
}

/// The bytes one call reads (see the file comment), from the layout
/// functions and each sequence's c(n) and residual rows.
std::string countBytes(kvc_rt_cache *cache, const std::vector<kvc_rt_seq> &seqs,
                       const Variant &v, Row &row) {
  const num::SideEncoding key = toNumerics(v.encoding.key),
                          value = toNumerics(v.encoding.value);
  const size_t
      kBlock = num::computeBlockLayout(key, v.headDim, v.pageTokens).blockBytes,
      vBlock =
          num::computeBlockLayout(value, v.headDim, v.pageTokens).blockBytes;
  kvc_rt_layer_view layer;
  if (kvc_rt_layer_view_get(cache, 0, &layer) != KVC_RT_OK)
    return runtimeError("kvc_rt_layer_view_get");
  if (layer.k.block_bytes != kBlock || layer.v.block_bytes != vBlock)
    return "the runtime's block sizes (" + std::to_string(layer.k.block_bytes) +
           ", " + std::to_string(layer.v.block_bytes) +
           ") differ from the layout's (" + std::to_string(kBlock) + ", " +
           std::to_string(vBlock) + ")";
  uint64_t kv = 0, elements = 0;
  for (kvc_rt_seq seq : seqs) {
    kvc_rt_sequence_view view;
    if (kvc_rt_sequence_view_get(cache, seq, 0, &view) != KVC_RT_OK)
      return runtimeError("kvc_rt_sequence_view_get");
    if (view.compressed_tokens % v.pageTokens)
      return "c(n) is not a whole number of pages";
    kv += uint64_t(view.num_pages) * v.kvHeads * (kBlock + vBlock);
    kv += view.residual_tokens * v.kvHeads * v.headDim * 2 * sizeof(uint16_t);
    elements += view.num_tokens * v.kvHeads * v.headDim * 2;
  }
  const uint64_t qOut = 2ull * v.batch * v.queryHeads * v.headDim * 4;
  row.kvBytes = kv;
  row.bytes = kv + qOut;
  row.readBits = elements ? 8.0 * double(kv) / double(elements) : 0;
  num::CacheEncoding enc{key, value, v.residual};
  row.storageBits = num::cacheBytesPerToken(enc, v.headDim, v.pageTokens) *
                    8.0 / (2.0 * v.headDim);
  return "";
}

/// Why the call failed (binding, cache, mgpu*, CUDA), or "".
std::string callProblem(kvc_rt_binding *binding, kvc_rt_cache *cache) {
  if (kvc_rt_binding_status(binding) != KVC_RT_OK)
    return std::string("binding: ") +
           kvc_rt_status_name(kvc_rt_binding_status(binding)) + ": " +
           kvc_rt_binding_error(binding) +
           " (cache: " + kvc_rt_cache_last_error(cache) + ")";
  std::string problem = gpuRecord();
  return problem.empty() ? deviceProblem("after the call") : problem;
}

/// Times the calls at the cache's current length (the file comment says
/// how) and checks the output of a last call.
std::string timeCalls(const Variant &v, AttentionEntry entry,
                      kvc_rt_cache *cache, const std::vector<kvc_rt_seq> &seqs,
                      FloatBuffer &q, FloatBuffer &out, const Options &options,
                      Row &row, std::vector<float> &result) {
  kvc_rt_binding *binding = nullptr;
  if (kvc_rt_binding_create(cache, 0, seqs.data(), v.batch, &binding) !=
      KVC_RT_OK)
    return runtimeError("kvc_rt_binding_create");
  BindingOwner owner(binding, kvc_rt_binding_destroy);
  Timer timer;
  if (std::string problem = timer.init(cache); !problem.empty())
    return problem;
  const int64_t Hq = v.queryHeads, D = v.headDim;
  auto descriptor = [&](float *data) {
    return kvc_rt_memref_4d_f32{
        data, data, 0, {int64_t(v.batch), Hq, 1, D}, {Hq * D, D, D, 1}};
  };
  auto call = [&] {
    kvc_rt_memref_4d_f32 qDesc = descriptor(q.ptr),
                         outDesc = descriptor(out.ptr);
    entry(binding, &qDesc, &outDesc);
  };
  // The call returns with its kernels enqueued (wait-on-return=false); a
  // caller waits for them on the cache's stream.
  auto wait = [&]() -> std::string {
    return kvc_rt_cache_synchronize(cache) == KVC_RT_OK
               ? ""
               : runtimeError("kvc_rt_cache_synchronize");
  };
  for (uint32_t i = 0; i < options.warmup; ++i)
    call();
  if (std::string problem = wait(); !problem.empty())
    return "warm-up: " + problem;
  if (std::string problem = callProblem(binding, cache); !problem.empty())
    return "warm-up: " + problem;
  for (uint32_t i = 0; i < options.reps; ++i) {
    double us = 0;
    if (std::string problem = timer.flush(false); !problem.empty())
      return problem;
    timer.start();
    call();
    if (std::string problem = timer.stop(us); !problem.empty())
      return problem;
    row.gpu.push_back(us);
  }
  for (uint32_t i = 0; i < options.reps; ++i) {
    if (std::string problem = timer.flush(true); !problem.empty())
      return problem;
    const auto begin = Clock::now();
    call();
    const auto enqueued = Clock::now();
    if (std::string problem = wait(); !problem.empty())
      return problem;
    const auto done = Clock::now();
    row.enqueue.push_back(
        std::chrono::duration<double, std::micro>(enqueued - begin).count());
    row.call.push_back(
        std::chrono::duration<double, std::micro>(done - begin).count());
  }
  if (std::string problem = callProblem(binding, cache); !problem.empty())
    return problem;
  // A failed call writes NaN (or nothing): poison, call, and look.
  result.clear();
  if (!out.poison())
    return deviceProblem("poisoning the output");
  call();
  if (std::string problem = wait(); !problem.empty())
    return problem;
  if (std::string problem = callProblem(binding, cache); !problem.empty())
    return problem;
  if (!out.download(result))
    return deviceProblem("copying the output");
  const size_t bad = size_t(std::count_if(
      result.begin(), result.end(), [](float x) { return !std::isfinite(x); }));
  if (bad)
    return std::to_string(bad) + " of " + std::to_string(result.size()) +
           " outputs are not finite (binding: " +
           kvc_rt_binding_error(binding) +
           "; cache: " + kvc_rt_cache_last_error(cache) + ")";
  return "";
}

/// The append steps timed per row: a residual window's worth (one flush).
uint32_t appendSteps(const Variant &v) {
  return std::max(v.residual, v.pageTokens);
}

/// Whether two variants read caches of the same shape and encoding (the
/// two key passes of one encoding): they can share one cache.
bool sameCache(const Variant &a, const Variant &b) {
  return a.batch == b.batch && a.kvHeads == b.kvHeads &&
         a.headDim == b.headDim && a.keySpec == b.keySpec &&
         a.valueSpec == b.valueSpec && a.residual == b.residual &&
         a.pageTokens == b.pageTokens;
}

/// One variant's cache, sequences and query / output buffers, or its
/// query / output buffers over the cache of an earlier variant of the same
/// cache (`owner`: filled once, half the fill time and memory for the
/// tensor-core twins). `problem` is sticky: once set, the variant's
/// remaining rows fail with it.
struct Bench {
  const Variant *v = nullptr;
  AttentionEntry entry = nullptr;
  AppendEntry append = nullptr; ///< the twin; null in older artifacts
  Bench *owner = nullptr;       ///< whose cache this one reads, or null
  CacheOwner cache{nullptr, kvc_rt_cache_destroy};
  std::vector<kvc_rt_seq> seqs;
  std::vector<uint32_t> filled;
  TokenPool pool;
  FloatBuffer q, out;
  std::vector<float> qHost;
  /// The output of this variant's last call at `outputS` (0: none).
  std::vector<float> output;
  uint32_t outputS = 0;
  std::string problem;
  double fillSeconds = 0;

  /// The earlier variant whose output this one's must match: the same
  /// cache and queries and the same arithmetic (key and value passes on the
  /// same units), only other kernel options (L2 prefetch, stages, fused
  /// combine); null for the first of each.
  Bench *reference = nullptr;

  /// Whether this variant takes its owner's queries (same query heads).
  bool sharesQueries() const {
    return owner && owner->v->queryHeads == v->queryHeads;
  }

  kvc_rt_cache *cacheHandle() {
    return owner ? owner->cache.get() : cache.get();
  }
  std::vector<kvc_rt_seq> &sequences() { return owner ? owner->seqs : seqs; }
  /// The owner's problem (its cache could not be filled) is this one's.
  const std::string &problemNow() {
    if (problem.empty() && owner && !owner->problem.empty())
      problem = "the shared cache of " + owner->v->name + ": " + owner->problem;
    return problem;
  }

  std::string create(uint32_t maxS, uint64_t seed) {
    if (owner)
      return createBuffers(seed);
    kvc_rt_cache_config config;
    kvc_rt_config_init(&config);
    config.backend = kBackend;
    config.num_layers = 1;
    config.kv_heads = v->kvHeads;
    config.head_dim = v->headDim;
    config.page_tokens = v->pageTokens;
    // Room for the append steps' forks: a second set of sequences, R more
    // tokens each, and their own pages for what they flush.
    const uint32_t steps = appendSteps(*v);
    config.max_sequences = 2 * v->batch;
    config.max_tokens = maxS + steps;
    config.pages_per_layer =
        v->batch * ((maxS + v->pageTokens - 1) / v->pageTokens +
                    (steps + v->pageTokens - 1) / v->pageTokens + 1);
    config.encodings = &v->encoding;
    kvc_rt_cache *raw = nullptr;
    if (kvc_rt_cache_create(&config, &raw) != KVC_RT_OK)
      return runtimeError("kvc_rt_cache_create");
    cache.reset(raw);
    seqs.resize(v->batch);
    filled.assign(v->batch, 0);
    for (kvc_rt_seq &seq : seqs)
      if (kvc_rt_sequence_create(raw, &seq) != KVC_RT_OK)
        return runtimeError("kvc_rt_sequence_create");
    std::mt19937_64 rng(seed ^ hashName(v->name));
    pool.generate(*v, rng());
    return createBuffers(rng());
  }

  /// The random query (from `seed`, or the owner's, so that the variants
  /// of one cache can be compared) and the output, on the device.
  std::string createBuffers(uint64_t seed) {
    const size_t elements = size_t(v->batch) * v->queryHeads * v->headDim;
    if (sharesQueries()) {
      qHost = owner->qHost;
    } else {
      std::mt19937_64 rng(seed ^ hashName(v->name));
      std::normal_distribution<float> normal(0.0f, 1.0f);
      qHost.resize(elements);
      for (float &x : qHost)
        x = normal(rng);
    }
    if (!q.allocate(elements) || !out.allocate(elements) || !q.upload(qHost))
      return deviceProblem("cudaMalloc/cudaMemcpy of q and out");
    return "";
  }
};

bool overBudget(Clock::time_point start, const Options &o) {
  return o.budget > 0 &&
         std::chrono::duration<double>(Clock::now() - start).count() > o.budget;
}

/// Grows every usable cache of `group` to S tokens, one thread per cache
/// (different caches may be used from different threads): the host-side
/// compression of kvc_rt_append is most of the benchmark's time.
void growAll(std::vector<std::unique_ptr<Bench>> &group, uint32_t S) {
  const size_t workers =
      std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  std::vector<Bench *> pending;
  for (auto &bench : group)
    if (bench->problem.empty() && !bench->owner)
      pending.push_back(bench.get());
  for (size_t first = 0; first < pending.size(); first += workers) {
    std::vector<std::thread> threads;
    for (size_t i = first; i < std::min(pending.size(), first + workers); ++i)
      threads.emplace_back([bench = pending[i], S] {
        const auto start = Clock::now();
        bench->problem = grow(bench->cache.get(), bench->seqs, bench->filled, S,
                              bench->pool, *bench->v);
        bench->fillSeconds =
            std::chrono::duration<double>(Clock::now() - start).count();
      });
    for (std::thread &thread : threads)
      thread.join();
  }
}

/// Compares the output of `bench`'s last call at S with its reference's
/// (same cache, queries and arithmetic; the reference's row came first): a
/// kernel option that times well but computes something else fails its
/// row. "" when they agree or the reference has no output at S (its row
/// failed: that row says why).
std::string compareWithReference(const Bench &bench, uint32_t S, Row &row) {
  if (!bench.reference || bench.reference->outputS != S)
    return "";
  const std::vector<float> &ref = bench.reference->output, &out = bench.output;
  if (ref.size() != out.size())
    return "the output's size differs from " + bench.reference->v->name + "'s";
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff = std::max(diff, std::fabs(double(out[i]) - double(ref[i])));
    scale = std::max(scale, std::fabs(double(ref[i])));
  }
  row.reference = bench.reference->v->name;
  row.referenceDiff = scale > 0 ? diff / scale : diff;
  if (!(row.referenceDiff <= kReferenceTolerance)) {
    char text[96];
    std::snprintf(text, sizeof text,
                  "%.3e of its largest magnitude (tolerance %.0e)",
                  row.referenceDiff, kReferenceTolerance);
    return std::string("the output differs from ") + row.reference +
           "'s for the same cache and queries by " + text;
  }
  return "";
}

/// Every variant of one batch size at every S; appends their rows.
void runBatch(const std::vector<const Variant *> &variants,
              const std::vector<uint32_t> &lengths, uint64_t seed,
              const Options &options, Clock::time_point start, bool &broken,
              const std::function<void(Row)> &report) {
  std::vector<std::unique_ptr<Bench>> group;
  for (const Variant *v : variants) {
    auto bench = std::make_unique<Bench>();
    bench->v = v;
    for (auto &earlier : group) {
      if (!earlier->owner && sameCache(*earlier->v, *v))
        bench->owner = earlier.get();
      if (!bench->reference && sameCache(*earlier->v, *v) &&
          earlier->v->queryHeads == v->queryHeads &&
          earlier->v->tensorCoreKeys == v->tensorCoreKeys &&
          earlier->v->tensorCoreValues == v->tensorCoreValues)
        bench->reference = earlier.get();
    }
    // Queries of their own (other query heads than the owner's): nothing
    // to compare with.
    if (!bench->sharesQueries())
      bench->reference = nullptr;
    bench->entry = findEntry<AttentionEntry>(v->name);
    bench->append = findAppendTwin(v->name);
    bench->problem = notRunReason(v->name, bench->entry != nullptr, broken);
    if (bench->problem.empty() && !overBudget(start, options))
      bench->problem = bench->create(lengths.back(), seed);
    group.push_back(std::move(bench));
  }
  for (uint32_t S : lengths) {
    const bool skip = overBudget(start, options);
    if (!skip) {
      growAll(group, S);
      for (auto &bench : group)
        if (bench->owner)
          std::fprintf(stderr, "attention_bench: %s: the cache of %s\n",
                       bench->v->name.c_str(), bench->owner->v->name.c_str());
        else
          std::fprintf(stderr,
                       "attention_bench: %s: filled to S=%u in %.1f s\n",
                       bench->v->name.c_str(), S, bench->fillSeconds);
    }
    for (auto &bench : group) {
      const Variant &v = *bench->v;
      Row row;
      // Tensor-core rows are told apart by " mma" (key pass) and " vmma"
      // (value pass), L2-prefetching ones by " l2bulk" or " l2lines", those
      // with the key pass's cp.async key stages by " ks<N>", the value
      // pass's by " vs<N>", and those whose split kernels merge the splits
      // (combine=fused) by " fused", those reading codes as fp16 normals
      // (mma-codes=normal) by " normal".
      row.label = encodingLabel(v.encoding) + (v.tensorCoreKeys ? " mma" : "") +
                  (v.tensorCoreValues ? " vmma" : "") +
                  (v.l2Prefetch != "none" ? " l2" + v.l2Prefetch : "") +
                  (v.keyStages ? " ks" + std::to_string(v.keyStages) : "") +
                  (v.valueStages ? " vs" + std::to_string(v.valueStages) : "") +
                  (v.fusedCombine ? " fused" : "") +
                  (v.normalCodes ? " normal" : "");
      row.name = v.name;
      row.batch = v.batch;
      row.S = S;
      row.ran = !skip;
      if (skip) {
        row.problem = "time budget";
      } else if (broken) {
        row.problem = "not run: the CUDA context failed earlier";
      } else if (!bench->problemNow().empty()) {
        row.problem = bench->problem;
      } else {
        kvc_rt_cache *cache = bench->cacheHandle();
        std::vector<kvc_rt_seq> &seqs = bench->sequences();
        row.problem = countBytes(cache, seqs, v, row);
        if (row.problem.empty())
          row.problem = timeCalls(v, bench->entry, cache, seqs, bench->q,
                                  bench->out, options, row, bench->output);
        bench->outputS = row.problem.empty() ? S : 0;
        if (row.problem.empty())
          row.problem = compareWithReference(*bench, S, row);
#if KVC_ATTENTION_EMULATED
        // Recorded by the emulator; the emulated check checks them.
        kvc::gpuemu::takePrefetches();
#endif
        if (row.problem.empty() && bench->append)
          row.problem =
              timeAppendSteps(bench->append, cache, seqs, v.kvHeads, v.headDim,
                              appendSteps(v), seed + S, row.append);
        if (!row.problem.empty()) {
          bench->problem = row.problem;
          broken = contextBroken();
        }
      }
      report(std::move(row));
    }
  }
}

int usage() {
  std::fprintf(stderr,
               "usage: kvc_attention_bench [--artifacts DIR] [--only "
               "NAME[,NAME...]] [--batches B[,B...]] [--seed N] [--reps N] "
               "[--warmup N] [--peak-tbps X] [--json PATH] [--budget SECONDS] "
               "[S ...]\n");
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  std::string artifacts = KVC_BENCH_ARTIFACTS_DIR, jsonPath, command;
  std::vector<std::string> only;
  std::vector<uint32_t> lengths, batchOrder;
  uint64_t seed = randomSeed();
  Options options;
  for (int i = 0; i < argc; ++i)
    command += (i ? " " : "") + std::string(argv[i]);
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--artifacts" || arg == "--only" || arg == "--batches" ||
        arg == "--seed" || arg == "--reps" || arg == "--warmup" ||
        arg == "--peak-tbps" || arg == "--json" || arg == "--budget") {
      if (i + 1 >= argc)
        return usage();
      const char *text = argv[++i];
      if (arg == "--artifacts")
        artifacts = text;
      else if (arg == "--only")
        only = split(text, ',');
      else if (arg == "--batches") {
        for (const std::string &batch : split(text, ','))
          if (!parseLength(batch, batchOrder))
            return usage();
      } else if (arg == "--seed")
        seed = std::strtoull(text, nullptr, 0);
      else if (arg == "--reps")
        options.reps = uint32_t(std::strtoul(text, nullptr, 10));
      else if (arg == "--warmup")
        options.warmup = uint32_t(std::strtoul(text, nullptr, 10));
      else if (arg == "--peak-tbps")
        options.peakTBps = std::strtod(text, nullptr);
      else if (arg == "--json")
        jsonPath = text;
      else
        options.budget = std::strtod(text, nullptr);
    } else if (!parseLength(arg, lengths)) {
      return usage();
    }
  }
  if (options.reps == 0 || !(options.peakTBps > 0))
    return usage();
  if (lengths.empty())
    lengths = {1024, 4096, 16384, 32768};
  std::sort(lengths.begin(), lengths.end());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());

  std::vector<Variant> variants;
  if (!readManifest("attention_bench", artifacts + "/bench_manifest.txt",
                    variants, parseVariant) ||
      !selectVariants("attention_bench", variants, only))
    return 2;
  // One batch size after another, each with all its encodings filled
  // together: those of --batches in its order (a time budget cuts the
  // last), else every batch size, ascending.
  std::vector<uint32_t> batches;
  for (const Variant &v : variants)
    batches.push_back(v.batch);
  std::sort(batches.begin(), batches.end());
  batches.erase(std::unique(batches.begin(), batches.end()), batches.end());
  if (!batchOrder.empty()) {
    for (auto it = batchOrder.begin(); it != batchOrder.end(); ++it) {
      const char *problem = nullptr;
      if (std::find(batchOrder.begin(), it, *it) != it)
        problem = "given twice";
      else if (!std::binary_search(batches.begin(), batches.end(), *it))
        problem = "the batch of no selected variant";
      if (problem) {
        std::fprintf(stderr, "attention_bench: --batches: %u is %s\n", *it,
                     problem);
        return 2;
      }
    }
    batches = batchOrder;
    variants.erase(std::remove_if(variants.begin(), variants.end(),
                                  [&](const Variant &v) {
                                    return std::find(batches.begin(),
                                                     batches.end(),
                                                     v.batch) == batches.end();
                                  }),
                   variants.end());
  }
  if (int exitCode =
          startDevice("attention_bench",
                      KVC_ATTENTION_EMULATED
                          ? "kvc-gpu-pipeline code on CPU caches, kernels "
                            "emulated"
                          : "kvc-cpu-pipeline code on CPU caches",
                      variants.size() * lengths.size()))
    return exitCode;
  size_t flushBytes = 0;
  if (std::string problem = prepareFlush(flushBytes); !problem.empty()) {
    std::printf("attention_bench: %s\n", problem.c_str());
    return 1;
  }
  // gpu_attention_build.sh compiles the GPU functions with
  // wait-on-return=false; older artifacts waited inside each call, and
  // their GPU times include that wait.
  std::string waitOnReturn = kGPUPipelineCode ? "unknown" : "n/a (CPU loops)";
  if (std::ifstream file(artifacts + "/wait-on-return.txt");
      file && kGPUPipelineCode)
    file >> waitOnReturn;
  if (!KVC_ATTENTION_HOST && waitOnReturn != "false")
    std::printf("attention_bench: WARNING: the artifacts' functions wait "
                "before they return (wait-on-return: %s): GPU us include "
                "that host wait\n",
                waitOnReturn.c_str());
  std::printf("seed: %llu; %u warm-up and %u timed calls per row; L2 flush "
              "%.1f MB; timing: %s; wait-on-return: %s; peak %.2f TB/s\n",
              (unsigned long long)seed, options.warmup, options.reps,
              flushBytes / 1e6, kTiming, waitOnReturn.c_str(),
              options.peakTBps);

  std::ostringstream header;
  header << "  \"command\": " << jsonString(command) << ",\n"
         << "  \"device\": " << jsonString(deviceInfo()) << ",\n"
         << "  \"timing\": " << jsonString(kTiming) << ",\n"
         << "  \"wait_on_return\": " << jsonString(waitOnReturn) << ",\n"
         << "  \"seed\": " << seed << ",\n"
         << "  \"reps\": " << options.reps << ",\n"
         << "  \"warmup\": " << options.warmup << ",\n"
         << "  \"l2_flush_bytes\": " << flushBytes << ",\n"
         << "  \"peak_tbps\": " << jsonNumber(options.peakTBps) << ",\n";

  printTableHeader();
  std::fflush(stdout);
  std::vector<Row> rows;
  int passed = 0, failed = 0, skipped = 0;
  auto report = [&](Row r) {
    rows.push_back(std::move(r));
    const Row &row = rows.back();
    if (!row.ran)
      ++skipped;
    else
      (row.problem.empty() ? passed : failed)++;
    printTableRow(row, options);
    std::fflush(stdout);
    if (!jsonPath.empty() && !writeJson(jsonPath, header.str(), rows, options))
      std::fprintf(stderr, "attention_bench: cannot write %s\n",
                   jsonPath.c_str());
  };
  const auto start = Clock::now();
  bool broken = false;
  for (uint32_t batch : batches) {
    std::vector<const Variant *> group;
    for (const Variant &v : variants)
      if (v.batch == batch)
        group.push_back(&v);
    runBatch(group, lengths, seed, options, start, broken, report);
  }
  if (skipped)
    std::printf("%d rows not run (time budget)\n", skipped);
  return finish(start, passed, failed);
}
