//===- append_check.cpp - kvc's generated GPU append vs kvc_rt_append -----===//
//
// Runs every kvc.append variant compiled by scripts/gpu_attention_build.sh
// (kvc-gpu-pipeline objects linked in) on a CUDA-backend cache A, and the
// same tokens through the runtime's kvc_rt_append on a twin cache T. After
// every call the binding must be OK; after every call that flushes a
// residual block in some sequence, the call before it (a full window) and
// the last, A and T must agree byte for byte: token counts, every page of
// each page table (K and V) and the staged rows [0, n - c(n)) of every KV
// head (as kvc-run --append=generated does on the CPU). Sequence b starts
// with 37 b mod R tokens (kvc_rt_append on both), so that the entries of
// one call flush at different points; then each call appends N fresh
// random f32 tokens (key outlier channels), about 3.5 R + 5 in all (200
// for R = 0). The compiled call is timed with CUDA events (reservation,
// launch, stream synchronization: the whole call), T's appends of the B
// entries with a host clock.
//
//   kvc_append_check [--artifacts DIR] [--only NAME[,NAME...]] [--seed N]
//
// DIR holds append_manifest.txt; --only keeps the variants whose names
// contain one of the strings. Prints a table and "N passed, N failed";
// exits 1 on a failure, 2 on bad arguments or manifest, 77 without a CUDA
// device. With KVC_ATTENTION_HOST=1 (kvc_append_check_host) it runs the
// kvc-cpu-pipeline (append=generated) code on CPU caches instead: a dry run
// of everything but the kernels, on any machine; with KVC_ATTENTION_EMULATED=1
// too (kvc_append_check_emu) the kvc-gpu-pipeline code, its kernels run by
// kvc's GPU emulator (format=llvm objects), on CPU caches.
//
//===----------------------------------------------------------------------===//

#include "CheckSupport.h"

#include "kvc_runtime.h"
#include "kvc_runtime_binding.h"
#include "kvc_runtime_gpu.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#ifndef KVC_APPEND_ARTIFACTS_DIR
#define KVC_APPEND_ARTIFACTS_DIR "build/gpu-attention/append"
#endif

namespace {

using namespace kvc::gpucheck;

/// `ptr _mlir_ciface_<name>(binding, k, v)`: llvm.emit_c_interface of
/// `(!kvc.cache, tensor, tensor) -> !kvc.cache` (the build script checks
/// it): the binding is returned; k and v are rank-4 f32 memref descriptors
/// [B][H][N][D] in device memory.
using AppendEntry = kvc_rt_binding *(*)(kvc_rt_binding *,
                                        kvc_rt_memref_4d_f32 *,
                                        kvc_rt_memref_4d_f32 *);

struct Variant {
  std::string name;
  uint32_t batch = 0, heads = 0, headDim = 0, tokens = 0, pageTokens = 0;
  kvc_rt_encoding encoding{};
};

/// One manifest line (append_variants.py documents the format); an error
/// message on failure.
std::string parseVariant(const std::string &line, Variant &v) {
  std::istringstream in(line);
  std::string key, value, extra;
  if (!(in >> v.name >> v.batch >> v.heads >> v.headDim >> v.tokens >> key >>
        value >> v.encoding.residual >> v.pageTokens) ||
      (in >> extra))
    return "expected: name B H D N key value residual page_tokens";
  if (!v.batch || !v.heads || !v.headDim || !v.tokens || !v.pageTokens)
    return "B, H, D, N and page_tokens must be positive";
  if (!parseSide(key, v.encoding.key) || !parseSide(value, v.encoding.value))
    return "bad side spec (q<bits>:<channel|token>:g<group>, fp16 or "
           "fp8:<e4m3|e5m2>)";
  return "";
}

#if KVC_ATTENTION_HOST
std::string synchronize() { return ""; }
#else
std::string synchronize() {
  cudaError_t err = cudaDeviceSynchronize();
  if (err == cudaSuccess)
    err = cudaGetLastError();
  return cudaProblem("after the call", err);
}
#endif

/// Copies backend memory (device memory on CUDA) to the host.
bool toHost(const void *src, uint64_t bytes, std::vector<uint8_t> &dst) {
  dst.resize(bytes);
#if KVC_ATTENTION_HOST
  std::memcpy(dst.data(), src, bytes);
  return true;
#else
  return cudaMemcpy(dst.data(), src, bytes, cudaMemcpyDeviceToHost) ==
         cudaSuccess;
#endif
}

/// The k / v tokens of a call as the compiled code reads them: device
/// copies on CUDA, the host vectors themselves in the dry run.
struct CallTokens {
  float *keys = nullptr, *values = nullptr;
#if KVC_ATTENTION_HOST
  bool upload(std::vector<float> &k, std::vector<float> &v) {
    keys = k.data();
    values = v.data();
    return true;
  }
#else
  ~CallTokens() {
    cudaFree(keys);
    cudaFree(values);
  }
  // The generated code launches on the cache's stream, a non-blocking one
  // that does not wait for the legacy default stream: the copies must be
  // complete before the call.
  bool upload(const std::vector<float> &k, const std::vector<float> &v) {
    const size_t bytes = k.size() * 4;
    if (!keys && (cudaMalloc(&keys, bytes) != cudaSuccess ||
                  cudaMalloc(&values, bytes) != cudaSuccess))
      return false;
    return cudaMemcpy(keys, k.data(), bytes, cudaMemcpyHostToDevice) ==
               cudaSuccess &&
           cudaMemcpy(values, v.data(), bytes, cudaMemcpyHostToDevice) ==
               cudaSuccess &&
           cudaDeviceSynchronize() == cudaSuccess;
  }
#endif
};

/// Times one call: CUDA events on the legacy stream (the generated code
/// synchronizes the cache's stream before it returns), a host clock in the
/// dry run.
struct CallTimer {
#if KVC_ATTENTION_HOST
  std::chrono::steady_clock::time_point begin;
  void start() { begin = std::chrono::steady_clock::now(); }
  double stopMicroseconds() {
    return std::chrono::duration<double, std::micro>(
               std::chrono::steady_clock::now() - begin)
        .count();
  }
#else
  cudaEvent_t begin = nullptr, end = nullptr;
  CallTimer() {
    cudaEventCreate(&begin);
    cudaEventCreate(&end);
  }
  ~CallTimer() {
    cudaEventDestroy(begin);
    cudaEventDestroy(end);
  }
  void start() { cudaEventRecord(begin, 0); }
  double stopMicroseconds() {
    float ms = 0;
    cudaEventRecord(end, 0);
    cudaEventSynchronize(end);
    cudaEventElapsedTime(&ms, begin, end);
    return ms * 1000.0;
  }
#endif
};

/// One cache and its B sequences.
struct Side {
  CacheOwner cache{nullptr, kvc_rt_cache_destroy};
  std::vector<kvc_rt_seq> seqs;
  std::string create(const kvc_rt_cache_config &config) {
    kvc_rt_cache *raw = nullptr;
    if (kvc_rt_cache_create(&config, &raw) != KVC_RT_OK)
      return runtimeError("kvc_rt_cache_create");
    cache.reset(raw);
    seqs.resize(config.max_sequences);
    for (kvc_rt_seq &seq : seqs)
      if (kvc_rt_sequence_create(raw, &seq) != KVC_RT_OK)
        return runtimeError("kvc_rt_sequence_create");
    return "";
  }
  /// kvc_rt_append of `count` tokens to sequence b from [H][count][D] f32.
  std::string append(size_t b, const float *keys, const float *values,
                     uint32_t count, const Variant &v) {
    kvc_rt_tokens tokens{};
    tokens.keys = keys;
    tokens.values = values;
    tokens.num_tokens = count;
    tokens.dtype = KVC_RT_DTYPE_F32;
    tokens.kv_heads = v.heads;
    tokens.head_dim = v.headDim;
    if (kvc_rt_append(cache.get(), seqs[b], 0, &tokens) != KVC_RT_OK)
      return runtimeError("kvc_rt_append");
    return "";
  }
};

/// A (compiled appends) against T (kvc_rt_append), byte for byte; an error
/// message naming the first difference, or "".
std::string compareCaches(Side &a, Side &t,
                          const std::vector<uint64_t> &lengths,
                          uint64_t &bytesCompared) {
  if (kvc_rt_cache_synchronize(a.cache.get()) != KVC_RT_OK ||
      kvc_rt_cache_synchronize(t.cache.get()) != KVC_RT_OK)
    return runtimeError("kvc_rt_cache_synchronize");
  std::vector<uint8_t> got, want;
  auto same = [&](const void *x, const void *y, uint64_t bytes) {
    bytesCompared += bytes;
    return toHost(x, bytes, got) && toHost(y, bytes, want) && got == want;
  };
  for (size_t b = 0; b < a.seqs.size(); ++b) {
    kvc_rt_sequence_view va, vt;
    if (kvc_rt_sequence_view_get(a.cache.get(), a.seqs[b], 0, &va) !=
            KVC_RT_OK ||
        kvc_rt_sequence_view_get(t.cache.get(), t.seqs[b], 0, &vt) != KVC_RT_OK)
      return runtimeError("kvc_rt_sequence_view_get");
    const std::string where = "sequence " + std::to_string(b) + ": ";
    if (va.num_tokens != lengths[b] || vt.num_tokens != lengths[b] ||
        va.compressed_tokens != vt.compressed_tokens ||
        va.residual_tokens != vt.residual_tokens ||
        va.num_pages != vt.num_pages)
      return where + "n " + std::to_string(va.num_tokens) + " / " +
             std::to_string(vt.num_tokens) + " (expected " +
             std::to_string(lengths[b]) + "), c(n) " +
             std::to_string(va.compressed_tokens) + " / " +
             std::to_string(vt.compressed_tokens) + ": token counts differ";
    for (uint32_t p = 0; p < va.num_pages; ++p) {
      const int32_t pa = va.page_table[p], pt = vt.page_table[p];
      if ((pa < 0) != (pt < 0))
        return where + "page " + std::to_string(p) + " is a hole in one";
      if (pa < 0)
        continue;
      for (int side = 0; side < 2; ++side) {
        const uint64_t bytes = side ? va.v.page_bytes : va.k.page_bytes;
        const auto *poolA =
            static_cast<const uint8_t *>(side ? va.v_pool : va.k_pool);
        const auto *poolT =
            static_cast<const uint8_t *>(side ? vt.v_pool : vt.k_pool);
        if (!same(poolA + uint64_t(pa) * bytes, poolT + uint64_t(pt) * bytes,
                  bytes))
          return where + (side ? "V" : "K") + " page " + std::to_string(p) +
                 " (of " + std::to_string(va.num_pages) +
                 ") differs from kvc_rt_append's";
      }
    }
    for (uint32_t h = 0; h < va.kv_heads && va.residual_tokens; ++h)
      for (int side = 0; side < 2; ++side) {
        const uint64_t offset = h * va.residual_head_bytes;
        const auto *ra =
            static_cast<const uint8_t *>(side ? va.v_residual : va.k_residual);
        const auto *rt =
            static_cast<const uint8_t *>(side ? vt.v_residual : vt.k_residual);
        if (!same(ra + offset, rt + offset,
                  va.residual_tokens * va.head_dim * 2))
          return where + (side ? "V" : "K") + " residual rows of KV head " +
                 std::to_string(h) + " differ from kvc_rt_append's";
      }
  }
  return "";
}

struct Outcome {
  std::string problem;
  uint64_t tokens = 0, bytesCompared = 0;
  double appendUs = 0, appendMaxUs = 0, runtimeUs = 0;
  bool cudaBroken = false;
};

double median(std::vector<double> values) {
  if (values.empty())
    return 0;
  std::nth_element(values.begin(), values.begin() + values.size() / 2,
                   values.end());
  return values[values.size() / 2];
}

Outcome runVariant(const Variant &v, AppendEntry entry, uint64_t seed) {
  Outcome outcome;
  std::seed_seq seeds{uint32_t(seed), uint32_t(seed >> 32),
                      uint32_t(hashName(v.name))};
  std::mt19937_64 rng(seeds);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const uint32_t B = v.batch, H = v.heads, D = v.headDim, N = v.tokens;
  const uint32_t R = v.encoding.residual;
  auto compressed = [&](uint64_t n) { return R ? n / R * R : n; };
  // Different flush points per batch entry; then the compiled calls.
  std::vector<uint64_t> lengths(B);
  for (uint32_t b = 0; b < B; ++b)
    lengths[b] = (37ull * b) % (R ? R : 64);
  const uint64_t target = R ? (7ull * R) / 2 + 5 : 200;
  const uint32_t calls = uint32_t((target + N - 1) / N);
  const uint64_t maxTokens =
      *std::max_element(lengths.begin(), lengths.end()) + uint64_t(calls) * N;

  kvc_rt_cache_config config;
  kvc_rt_config_init(&config);
  config.backend = kBackend;
  config.num_layers = 1;
  config.kv_heads = H;
  config.head_dim = D;
  config.page_tokens = v.pageTokens;
  config.max_sequences = B;
  config.max_tokens = uint32_t(maxTokens);
  config.pages_per_layer =
      B * uint32_t((maxTokens + v.pageTokens - 1) / v.pageTokens);
  config.encodings = &v.encoding;
  Side a, t;
  if (!(outcome.problem = a.create(config)).empty() ||
      !(outcome.problem = t.create(config)).empty())
    return outcome;

  // Tokens of one call, [B][H][N][D] f32: keys with a few outlier channels.
  std::vector<float> scale(D, 1.0f), shift(D, 0.0f);
  for (uint32_t c : {1u, D / 3, D - 2}) {
    scale[c] = 12.0f;
    shift[c] = 6.0f;
  }
  auto draw = [&](std::vector<float> &keys, std::vector<float> &values,
                  size_t elements) {
    keys.resize(elements);
    values.resize(elements);
    for (size_t e = 0; e < elements; ++e) {
      keys[e] = normal(rng) * scale[e % D] + shift[e % D];
      values[e] = normal(rng);
    }
  };
  std::vector<float> keys, values;
  for (uint32_t b = 0; b < B; ++b) {
    if (!lengths[b])
      continue;
    draw(keys, values, size_t(H) * lengths[b] * D);
    for (Side *side : {&a, &t})
      if (!(outcome.problem = side->append(b, keys.data(), values.data(),
                                           uint32_t(lengths[b]), v))
               .empty())
        return outcome;
  }
  kvc_rt_binding *binding = nullptr;
  if (kvc_rt_binding_create(a.cache.get(), 0, a.seqs.data(), B, &binding) !=
      KVC_RT_OK) {
    outcome.problem = runtimeError("kvc_rt_binding_create");
    return outcome;
  }
  BindingOwner bindingOwner(binding, kvc_rt_binding_destroy);

  const size_t elements = size_t(B) * H * N * D;
  CallTokens device;
  auto descriptor = [&](float *data) {
    const int64_t h = H, n = N, d = D;
    return kvc_rt_memref_4d_f32{
        data, data, 0, {int64_t(B), h, n, d}, {h * n * d, n * d, d, 1}};
  };
  CallTimer timer;
  std::vector<double> appendUs, runtimeUs;
  for (uint32_t call = 0; call < calls; ++call) {
    draw(keys, values, elements);
    if (!device.upload(keys, values)) {
      outcome.problem = "cudaMalloc / cudaMemcpy of the tokens failed";
      outcome.cudaBroken = true;
      return outcome;
    }
    kvc_rt_memref_4d_f32 kDesc = descriptor(device.keys),
                         vDesc = descriptor(device.values);
    timer.start();
    kvc_rt_binding *returned = entry(binding, &kDesc, &vDesc);
    appendUs.push_back(timer.stopMicroseconds());
    std::string problem = synchronize();
    if (problem.empty())
      problem = gpuRecord();
    if (!problem.empty()) {
      outcome.problem = "call " + std::to_string(call) + ": " + problem;
      outcome.cudaBroken = true;
      return outcome;
    }
    if (kvc_rt_binding_status(binding) != KVC_RT_OK || returned != binding) {
      outcome.problem =
          "call " + std::to_string(call) +
          ": binding: " + kvc_rt_status_name(kvc_rt_binding_status(binding)) +
          ": " + kvc_rt_binding_error(binding) +
          (returned != binding ? " (the call returned another binding)" : "");
      return outcome;
    }
    const auto runtimeStart = std::chrono::steady_clock::now();
    for (uint32_t b = 0; b < B; ++b) {
      const size_t at = size_t(b) * H * N * D;
      if (!(outcome.problem =
                t.append(b, keys.data() + at, values.data() + at, N, v))
               .empty())
        return outcome;
    }
    kvc_rt_cache_synchronize(t.cache.get());
    runtimeUs.push_back(std::chrono::duration<double, std::micro>(
                            std::chrono::steady_clock::now() - runtimeStart)
                            .count());
    // Compare after a flush of any entry, before one (a full window), and
    // at the end.
    bool flushed = false, flushesNext = false;
    for (uint64_t &n : lengths) {
      flushed |= compressed(n + N) != compressed(n);
      flushesNext |= compressed(n + 2 * N) != compressed(n + N);
      n += N;
    }
    if (flushed || flushesNext || call + 1 == calls) {
      problem = compareCaches(a, t, lengths, outcome.bytesCompared);
      if (!problem.empty()) {
        outcome.problem = "call " + std::to_string(call) + ": " + problem;
        return outcome;
      }
    }
  }
  outcome.tokens = uint64_t(calls) * N;
  outcome.appendUs = median(appendUs);
  outcome.appendMaxUs = *std::max_element(appendUs.begin(), appendUs.end());
  outcome.runtimeUs = median(runtimeUs);
  return outcome;
}

int usage() {
  std::fprintf(stderr, "usage: kvc_append_check [--artifacts DIR] [--only "
                       "NAME[,NAME...]] [--seed N]\n");
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  std::string artifacts = KVC_APPEND_ARTIFACTS_DIR;
  std::vector<std::string> only; // --only's parts
  uint64_t seed = randomSeed();
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg != "--artifacts" && arg != "--only" && arg != "--seed") ||
        i + 1 >= argc)
      return usage();
    const char *text = argv[++i];
    if (arg == "--artifacts")
      artifacts = text;
    else if (arg == "--only")
      for (const std::string &part : split(text, ','))
        only.push_back(part); // repeated --only options add up
    else {
      char *end = nullptr;
      seed = std::strtoull(text, &end, 0);
      if (!*text || *end)
        return usage();
    }
  }
  std::vector<Variant> variants;
  if (!readManifest("append_check", artifacts + "/append_manifest.txt",
                    variants, parseVariant) ||
      !selectVariants("append_check", variants, only))
    return 2;
#if KVC_ATTENTION_EMULATED
  const char *what = "kvc-gpu-pipeline append kernels emulated on CPU caches";
#else
  const char *what = "kvc-cpu-pipeline append loops on CPU caches";
#endif
  if (int exitCode = startDevice("append_check", what, variants.size()))
    return exitCode;
  std::printf("seed: %llu (--seed %llu reproduces)\n", (unsigned long long)seed,
              (unsigned long long)seed);
  std::printf("| variant | tokens | bytes compared | append us/call "
              "(median) | append us (max) | kvc_rt_append us/call (median) "
              "| result |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- |\n");
  const auto start = std::chrono::steady_clock::now();
  int passed = 0, failed = 0;
  bool broken = false;
  for (const Variant &v : variants) {
    auto entry = findEntry<AppendEntry>(v.name);
    Outcome outcome;
    outcome.problem = notRunReason(v.name, entry != nullptr, broken);
    if (outcome.problem.empty())
      outcome = runVariant(v, entry, seed);
    const bool ok = outcome.problem.empty();
    (ok ? passed : failed)++;
    std::printf("| %s | %llu | %llu | %.1f | %.1f | %.1f | %s%s%s |\n",
                v.name.c_str(), (unsigned long long)outcome.tokens,
                (unsigned long long)outcome.bytesCompared, outcome.appendUs,
                outcome.appendMaxUs, outcome.runtimeUs, ok ? "PASS" : "FAIL",
                ok ? "" : ": ", outcome.problem.c_str());
    std::fflush(stdout);
    if (outcome.cudaBroken)
      broken = contextBroken();
  }
  return finish(start, passed, failed);
}
