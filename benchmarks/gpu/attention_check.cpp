//===- attention_check.cpp - kvc's generated GPU attention vs the oracle --===//
//
// Runs every decode-attention variant compiled by
// scripts/gpu_attention_build.sh (kvc-gpu-pipeline objects linked into this
// program) on CUDA-backend runtime caches and compares each output with the
// fp64 reference attention over the cache's own dequantized contents
// (kvc_rt_gather): max |gpu - oracle| / max |oracle| <= 1e-4 per variant
// (f32 accumulation against fp64, as the CPU execution tests). Variants
// with key_product=mma (tensor-core key dot products) are compared with
// the oracle over the same queries and keys rounded to fp16 (channel-axis
// 2/4/8-bit keys, whose scales the kernels fold into the queries: over the
// keys each query sees through that arithmetic, kvc/Numerics/FoldedScales.h),
// variants with value_product=mma (tensor-core weighted sums) over values
// rounded to fp16 (but for token-axis 2/4/8-bit values in groups of the
// whole head, whose scales the kernels fold into the weights).
//
// For each manifest variant and each sequence length S, batch entry b holds
// S - (37 b mod S/2) tokens (different flush points and partial pages), the
// last entry of a batch fewer tokens than the residual window; keys have a
// few outlier channels. Queries are fresh random values (seed printed), the
// output is poisoned with NaN bytes before each call, and the call is
// repeated: both results must be bitwise equal (a moving result is a race).
//
//   kvc_attention_check [--artifacts DIR] [--only NAME[,NAME...]]
//                       [--seed N] [--tolerance X] [S ...]
//
// DIR holds manifest.txt (default: the directory the program was configured
// with); --only keeps the variants whose names contain one of the strings;
// S defaults to 1024 4096. Prints a table, then "N passed, N failed"; exits
// 1 on any failure, 2 on bad arguments or manifest, 77 without a CUDA
// device.
//
// Built with KVC_ATTENTION_HOST=1 (kvc_attention_check_host) the same
// program runs the variants compiled by kvc-cpu-pipeline on CPU caches with
// host buffers: a dry run of everything but the kernels, on any machine.
// Built with KVC_ATTENTION_EMULATED=1 as well (kvc_attention_check_emu) it
// runs the kvc-gpu-pipeline code, kernels included, on CPU caches: the
// kernels (LLVM bitcode, format=llvm) run in kvc's GPU emulator
// (lib/GPUEmulator), which computes mma.sync and shfl.sync from the PTX
// ISA's definitions, so the fragments, loop bounds and stores are checked
// against the oracle without a GPU.
//
//===----------------------------------------------------------------------===//

#include "CheckSupport.h"

#include "kvc_runtime.h"
#include "kvc_runtime_binding.h"
#include "kvc_runtime_gpu.h"

#if KVC_ATTENTION_EMULATED
#include "kvc/GPUEmulator/PrefetchCheck.h"
#endif
#include "kvc/Numerics/FoldedScales.h"
#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Quantize.h"
#include "kvc/Numerics/ReferenceAttention.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace num = kvc::numerics;

#ifndef KVC_ATTENTION_ARTIFACTS_DIR
#define KVC_ATTENTION_ARTIFACTS_DIR "build/gpu-attention"
#endif

namespace {

using namespace kvc::gpucheck;

/// `_mlir_ciface_<name>(binding, q, out)`: what buffer-results-to-out-params
/// and llvm.emit_c_interface make of `(!kvc.cache, tensor) -> tensor`
/// (scripts/gpu_attention_build.sh checks the arity; the out-parameter
/// comes last). Both descriptors are rank-4 f32 memrefs in device memory.
using AttentionEntry = void (*)(kvc_rt_binding *, kvc_rt_memref_4d_f32 *,
                                kvc_rt_memref_4d_f32 *);

struct Variant : PipelineFields {
  std::string name;
  uint32_t batch = 0, queryHeads = 0, kvHeads = 0, headDim = 0;
  std::vector<kvc_rt_encoding> encodings; ///< 1, or one per KV head
  uint32_t residual = 0, pageTokens = 0, splitTokens = 0;
  size_t window = 0;
  double softcap = 0;
};

/// One manifest line (attention_variants.py documents the format); an
/// error message on failure.
std::string parseVariant(const std::string &line, Variant &v) {
  std::istringstream in(line);
  std::string keys, values;
  if (!(in >> v.name >> v.batch >> v.queryHeads >> v.kvHeads >> v.headDim >>
        keys >> values >> v.residual >> v.pageTokens >> v.splitTokens))
    return "expected: name B Hq Hkv D key value residual page_tokens split";
  for (std::string extra; in >> extra;) {
    if (extra.rfind("window=", 0) == 0)
      v.window = std::strtoull(extra.c_str() + 7, nullptr, 10);
    else if (extra.rfind("softcap=", 0) == 0)
      v.softcap = std::strtod(extra.c_str() + 8, nullptr);
    else if (!pipelineField(extra, v))
      return "unknown field '" + extra + "'";
  }
  if (!v.batch || !v.kvHeads || !v.headDim || !v.pageTokens ||
      v.queryHeads % v.kvHeads || v.queryHeads == 0)
    return "bad shape (B, Hq a positive multiple of Hkv, D, page_tokens)";
  std::vector<std::string> keySpecs = split(keys, ','),
                           valueSpecs = split(values, ',');
  if (keySpecs.size() != valueSpecs.size() ||
      (keySpecs.size() != 1 && keySpecs.size() != v.kvHeads))
    return "per-head key and value lists must both have Hkv entries";
  for (size_t h = 0; h < keySpecs.size(); ++h) {
    kvc_rt_encoding encoding{};
    if (!parseSide(keySpecs[h], encoding.key) ||
        !parseSide(valueSpecs[h], encoding.value))
      return "bad side spec in '" + keySpecs[h] + "' / '" + valueSpecs[h] +
             "' (q<bits>:<channel|token>:g<group>, fp16, fp8:<e4m3|e5m2>)";
    encoding.residual = v.residual;
    v.encodings.push_back(encoding);
  }
  return "";
}

/// Token counts of the batch entries for sequence length S.
std::vector<uint32_t> sequenceLengths(const Variant &v, uint32_t S) {
  std::vector<uint32_t> lengths(v.batch);
  const uint32_t spread = std::max(1u, S / 2);
  for (uint32_t b = 0; b < v.batch; ++b)
    lengths[b] = S - (37 * b) % spread;
  if (v.batch > 1) {
    // All tokens in the fp16 residual (or, without one, a partial page).
    uint32_t shortLength = v.residual ? v.residual / 2 + 5 : 19;
    lengths.back() = std::min(shortLength, S);
  }
  return lengths;
}

struct Outcome {
  double relError = std::numeric_limits<double>::infinity();
  std::string problem; ///< empty when the output could be compared
  bool cudaBroken = false;
};

#if KVC_ATTENTION_HOST
std::string synchronize() { return ""; }
#else
std::string synchronize() {
  cudaError_t err = cudaDeviceSynchronize();
  return err == cudaSuccess ? deviceProblem("after the call")
                            : cudaProblem("cudaDeviceSynchronize", err);
}
#endif

/// Worker threads for token generation and the oracle.
size_t workerCount() {
  return std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
}

/// The fp16-representable random tokens of sequence b ([H][n][D] keys and
/// values), drawn from seed (`seed`, b). A few key channels have large
/// magnitude and offset, as real keys have.
void randomTokens(const Variant &v, uint64_t seed, size_t b, size_t n,
                  std::vector<float> &keys, std::vector<float> &values) {
  const uint32_t D = v.headDim, H = v.kvHeads;
  std::vector<float> scale(D, 1.0f), shift(D, 0.0f);
  for (uint32_t c : {1u, D / 3, D - 2}) {
    scale[c] = 12.0f;
    shift[c] = 6.0f;
  }
  std::seed_seq seeds{uint32_t(seed), uint32_t(seed >> 32), uint32_t(b)};
  std::mt19937_64 rng(seeds);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  keys.resize(H * n * D);
  values.resize(H * n * D);
  for (size_t e = 0; e < keys.size(); ++e) {
    const size_t c = e % D;
    keys[e] = num::roundToHalf(normal(rng) * scale[c] + shift[c]);
    values[e] = num::roundToHalf(normal(rng));
  }
}

/// Appends randomTokens to every sequence (in two calls each, so that
/// flushes also happen across appends), drawn on `workerCount()` threads.
std::string fillCache(kvc_rt_cache *cache, const std::vector<kvc_rt_seq> &seqs,
                      const std::vector<uint32_t> &lengths, const Variant &v,
                      uint64_t seed) {
  const uint32_t D = v.headDim, H = v.kvHeads;
  const size_t workers = workerCount();
  for (size_t first = 0; first < seqs.size(); first += workers) {
    const size_t count = std::min(workers, seqs.size() - first);
    std::vector<std::vector<float>> keys(count), values(count);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < count; ++i)
      threads.emplace_back([&, i] {
        randomTokens(v, seed, first + i, lengths[first + i], keys[i],
                     values[i]);
      });
    for (std::thread &thread : threads)
      thread.join();
    for (size_t i = 0; i < count; ++i) {
      const uint32_t n = lengths[first + i], part = n / 3;
      for (auto [t0, tokenCount] :
           {std::pair<uint32_t, uint32_t>{0, part},
            std::pair<uint32_t, uint32_t>{part, n - part}}) {
        kvc_rt_tokens tokens{};
        tokens.keys = keys[i].data() + size_t(t0) * D;
        tokens.values = values[i].data() + size_t(t0) * D;
        tokens.num_tokens = tokenCount;
        tokens.dtype = KVC_RT_DTYPE_F32;
        tokens.kv_heads = H;
        tokens.head_dim = D;
        tokens.head_stride = uint64_t(n) * D;
        tokens.token_stride = D;
        if (kvc_rt_append(cache, seqs[first + i], 0, &tokens) != KVC_RT_OK)
          return runtimeError("kvc_rt_append");
      }
    }
  }
  return "";
}

/// Whether the kernels under test fold the scales of tensor-core variants
/// (num::foldsKeyScales, num::foldsValueScales): the GPU's and the
/// emulator's do; the host objects (kvc-cpu-pipeline key-reads=parts,
/// value-reads=f16) multiply dequantized keys and values rounded to fp16.
constexpr bool kKernelsFoldScales =
    !KVC_ATTENTION_HOST || KVC_ATTENTION_EMULATED;

/// Whether the calls run kvc-gpu-pipeline's kernels (on the GPU or in the
/// emulator), not the host dry run's CPU loops.
constexpr bool kRunsKernels = !KVC_ATTENTION_HOST || KVC_ATTENTION_EMULATED;

num::SideEncoding toNumerics(const kvc_rt_side_encoding &side) {
  switch (side.kind) {
  case KVC_RT_SIDE_QUANT:
    return num::SideEncoding::quantized(
        side.bits,
        side.axis == KVC_RT_AXIS_CHANNEL ? num::QuantAxis::Channel
                                         : num::QuantAxis::Token,
        side.group);
  case KVC_RT_SIDE_FP8:
    return num::SideEncoding::fp8Format(side.fp8_format == KVC_RT_FP8_E5M2
                                            ? num::FP8Format::E5M2
                                            : num::FP8Format::E4M3);
  default:
    return num::SideEncoding::plain();
  }
}

/// The oracle of sequence b when key heads fold their scales
/// (num::foldedKeyAttention), their terms from the tokens fillCache
/// appended, whose quantization must match the cache's `keys` (dequantized,
/// rounded to fp16). An error message on a mismatch.
std::string foldedOracle(const Variant &v, uint64_t tokenSeed, size_t b,
                         size_t n, const float *rawQueries,
                         const std::vector<float> &keys,
                         const std::vector<float> &values,
                         const num::AttentionOptions &options,
                         std::vector<double> &expected) {
  const size_t D = v.headDim, H = v.kvHeads;
  std::vector<float> plainKeys, plainValues;
  randomTokens(v, tokenSeed, b, n, plainKeys, plainValues);
  std::vector<num::CompressedTerms> terms(H);
  std::vector<const num::CompressedTerms *> folded(H, nullptr);
  for (size_t h = 0; h < H; ++h) {
    const num::SideEncoding side =
        toNumerics(v.encodings[v.encodings.size() == 1 ? 0 : h].key);
    if (!num::foldsKeyScales(side))
      continue;
    terms[h] = num::simulateCompressedTerms(plainKeys.data() + h * n * D, n,
                                            D, side, v.residual);
    for (size_t i = 0; i < terms[h].tokens * D; ++i) {
      const float dequantized = num::dequantizeValue(
          terms[h].codes[i],
          num::GroupParams{terms[h].scales[i], terms[h].zeros[i]});
      if (num::roundToHalf(dequantized) != keys[h * n * D + i])
        return "the cache's key " + std::to_string(i) + " of head " +
               std::to_string(h) + " is not the appended token's quantization";
    }
    folded[h] = &terms[h];
  }
  expected = num::foldedKeyAttention(rawQueries, v.queryHeads, keys.data(),
                                     values.data(), H, n, D, folded, options);
  return "";
}

/// max |out - oracle| / max |oracle| over the whole output; the oracle is
/// the fp64 attention over the cache's dequantized contents (or, for key
/// heads that fold their scales, foldedOracle's).
std::string compareWithOracle(kvc_rt_cache *cache,
                              const std::vector<kvc_rt_seq> &seqs,
                              const std::vector<uint32_t> &lengths,
                              const Variant &v, uint64_t tokenSeed,
                              const std::vector<float> &q,
                              const std::vector<float> &out, double &relError) {
  const size_t D = v.headDim, H = v.kvHeads, Hq = v.queryHeads;
  num::AttentionOptions options;
  options.causal = true;
  options.window = v.window;
  options.softcap = v.softcap;
  const size_t workers = workerCount();
  double maxError = 0, maxReference = 0;
  size_t nonFinite = 0;
  // Tensor-core variants multiply fp16 queries and keys (exactly, f32
  // accumulation): the oracle takes the same inputs. So do their host
  // objects (kvc-cpu-pipeline key-reads=parts). Kernels that fold key
  // scales multiply the keys' codes (foldedOracle).
  const bool roundToHalf = v.tensorCoreKeys;
  bool folds = false;
  if (kKernelsFoldScales && v.tensorCoreKeys)
    for (const kvc_rt_encoding &encoding : v.encodings)
      folds = folds || num::foldsKeyScales(toNumerics(encoding.key));
  std::vector<float> queries(q);
  if (roundToHalf)
    for (float &x : queries)
      x = num::roundToHalf(x);
  // Gathering is serial (one cache, one thread); the oracle runs on
  // `workers` sequences at a time.
  for (size_t first = 0; first < seqs.size(); first += workers) {
    const size_t count = std::min(workers, seqs.size() - first);
    std::vector<std::vector<float>> keys(count), values(count);
    std::vector<std::vector<double>> expected(count);
    for (size_t i = 0; i < count; ++i) {
      const size_t b = first + i, n = lengths[b];
      keys[i].resize(H * n * D);
      values[i].resize(H * n * D);
      for (size_t h = 0; h < H; ++h)
        if (kvc_rt_gather(cache, seqs[b], 0, uint32_t(h),
                          keys[i].data() + h * n * D,
                          values[i].data() + h * n * D, n) != KVC_RT_OK)
          return runtimeError("kvc_rt_gather");
    }
    if (roundToHalf)
      for (std::vector<float> &k : keys)
        for (float &x : k)
          x = num::roundToHalf(x);
    // Tensor-core value variants weigh fp16 values (their host objects:
    // kvc-cpu-pipeline value-reads=f16), except the heads whose scales
    // they fold: the dequantized values themselves.
    if (v.tensorCoreValues)
      for (size_t i = 0; i < count; ++i) {
        const size_t n = lengths[first + i];
        for (size_t h = 0; h < H; ++h) {
          const num::SideEncoding side =
              toNumerics(v.encodings[v.encodings.size() == 1 ? 0 : h].value);
          if (kKernelsFoldScales && num::foldsValueScales(side, D))
            continue;
          for (size_t e = h * n * D; e < (h + 1) * n * D; ++e)
            values[i][e] = num::roundToHalf(values[i][e]);
        }
      }
    std::vector<std::thread> threads;
    std::vector<std::string> problems(count);
    for (size_t i = 0; i < count; ++i)
      threads.emplace_back([&, i] {
        const size_t b = first + i;
        if (folds)
          problems[i] = foldedOracle(v, tokenSeed, b, lengths[b],
                                     q.data() + b * Hq * D, keys[i], values[i],
                                     options, expected[i]);
        else
          expected[i] = num::referenceAttention(
              queries.data() + b * Hq * D, Hq, 1, keys[i].data(),
              values[i].data(), H, lengths[b], D, options);
      });
    for (std::thread &thread : threads)
      thread.join();
    for (const std::string &problem : problems)
      if (!problem.empty())
        return problem;
    for (size_t i = 0; i < count; ++i) {
      const float *got = out.data() + (first + i) * Hq * D;
      for (size_t j = 0; j < Hq * D; ++j) {
        maxReference = std::max(maxReference, std::fabs(expected[i][j]));
        if (!std::isfinite(got[j]))
          ++nonFinite;
        else
          maxError = std::max(maxError, std::fabs(got[j] - expected[i][j]));
      }
    }
  }
  if (nonFinite)
    return std::to_string(nonFinite) + " of " + std::to_string(out.size()) +
           " outputs are not finite (unwritten or NaN)";
  relError = maxError / std::max(maxReference, 1e-30);
  return "";
}

#if KVC_ATTENTION_EMULATED
/// What is wrong with the prefetches of the call just made ("" if
/// nothing): each must lie in a page block of the cache, and be of the kind
/// the variant was built with.
std::string prefetchProblem(const kvc_rt_cache *cache,
                            const std::vector<kvc_rt_seq> &seqs,
                            const Variant &v) {
  kvc::gpuemu::PrefetchCounts counts;
  std::string problem =
      kvc::gpuemu::checkPrefetches(cache, seqs.data(), seqs.size(), counts);
  if (problem.empty() && ((counts.lines > 0) != (v.l2Prefetch == "lines") ||
                          (counts.blocks > 0) != (v.l2Prefetch == "bulk")))
    problem = "l2_prefetch=" + v.l2Prefetch + " but " +
              std::to_string(counts.lines) + " line and " +
              std::to_string(counts.blocks) + " block prefetches";
  return problem;
}
#endif

/// What is wrong with the binding's first `count` arrival counters after
/// a combine=fused call ("" if they are all zero).
std::string countersProblem(kvc_rt_binding *binding, uint32_t count) {
  // The call took at least `count`: the same block, not a new zeroed one.
  const int32_t *counters = kvc_rt_mlir_gpu_counters(binding, count);
  if (!counters)
    return std::string("kvc_rt_mlir_gpu_counters: ") +
           kvc_rt_binding_error(binding);
  std::vector<int32_t> values(count);
#if KVC_ATTENTION_HOST
  std::memcpy(values.data(), counters, count * sizeof(int32_t));
#else
  if (cudaMemcpy(values.data(), counters, count * sizeof(int32_t),
                 cudaMemcpyDeviceToHost) != cudaSuccess)
    return deviceProblem("cudaMemcpy of the arrival counters");
#endif
  for (uint32_t i = 0; i < count; ++i)
    if (values[i] != 0)
      return "combine=fused left arrival counter " + std::to_string(i) +
             " at " + std::to_string(values[i]) + ", not 0";
  return "";
}

Outcome runVariant(const Variant &v, AttentionEntry entry, uint32_t S,
                   uint64_t seed) {
  Outcome outcome;
  std::seed_seq seeds{uint32_t(seed), uint32_t(seed >> 32),
                      uint32_t(hashName(v.name)), S};
  std::mt19937_64 rng(seeds);
  const std::vector<uint32_t> lengths = sequenceLengths(v, S);
  const uint32_t maxLength = *std::max_element(lengths.begin(), lengths.end());

  kvc_rt_cache_config config;
  kvc_rt_config_init(&config);
  config.backend = kBackend;
  config.num_layers = 1;
  config.kv_heads = v.kvHeads;
  config.head_dim = v.headDim;
  config.page_tokens = v.pageTokens;
  config.max_sequences = v.batch;
  config.max_tokens = maxLength;
  config.pages_per_layer =
      v.batch * ((maxLength + v.pageTokens - 1) / v.pageTokens);
  config.encodings_per_layer = uint32_t(v.encodings.size());
  config.encodings = v.encodings.data();
  kvc_rt_cache *cache = nullptr;
  if (kvc_rt_cache_create(&config, &cache) != KVC_RT_OK) {
    outcome.problem = runtimeError("kvc_rt_cache_create");
    return outcome;
  }
  CacheOwner cacheOwner(cache, kvc_rt_cache_destroy);
  std::vector<kvc_rt_seq> seqs(v.batch);
  for (kvc_rt_seq &seq : seqs)
    if (kvc_rt_sequence_create(cache, &seq) != KVC_RT_OK) {
      outcome.problem = runtimeError("kvc_rt_sequence_create");
      return outcome;
    }
#if KVC_ATTENTION_EMULATED
  kvc::gpuemu::takePrefetches(); // an earlier variant's, if it failed
#endif
  const uint64_t tokenSeed = rng();
  outcome.problem = fillCache(cache, seqs, lengths, v, tokenSeed);
  if (!outcome.problem.empty())
    return outcome;
  kvc_rt_binding *binding = nullptr;
  if (kvc_rt_binding_create(cache, 0, seqs.data(), v.batch, &binding) !=
      KVC_RT_OK) {
    outcome.problem = runtimeError("kvc_rt_binding_create");
    return outcome;
  }
  BindingOwner bindingOwner(binding, kvc_rt_binding_destroy);

  const size_t elements = size_t(v.batch) * v.queryHeads * v.headDim;
  std::vector<float> q(elements);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float &x : q)
    x = normal(rng);
  FloatBuffer qBuffer, outBuffer; // complete before the call
  if (!qBuffer.allocate(elements) || !outBuffer.allocate(elements) ||
      !qBuffer.upload(q)) {
    outcome.problem = deviceProblem("cudaMalloc/cudaMemcpy");
    outcome.cudaBroken = true;
    return outcome;
  }
  auto descriptor = [&](float *data) {
    const int64_t Hq = v.queryHeads, D = v.headDim;
    return kvc_rt_memref_4d_f32{
        data, data, 0, {int64_t(v.batch), Hq, 1, D}, {Hq * D, D, D, 1}};
  };
  std::vector<float> out(elements), again(elements);
  for (std::vector<float> *result : {&out, &again}) {
    kvc_rt_memref_4d_f32 qDesc = descriptor(qBuffer.ptr),
                         outDesc = descriptor(outBuffer.ptr);
    if (!outBuffer.poison()) {
      outcome.problem = deviceProblem("poisoning the output");
      outcome.cudaBroken = true;
      return outcome;
    }
    entry(binding, &qDesc, &outDesc);
    std::string problem = synchronize();
    if (problem.empty())
      problem = gpuRecord();
    if (!problem.empty()) {
      outcome.problem = problem;
      outcome.cudaBroken = true;
      return outcome;
    }
#if KVC_ATTENTION_EMULATED
    outcome.problem = prefetchProblem(cache, seqs, v);
    if (!outcome.problem.empty())
      return outcome;
#endif
    if (kvc_rt_binding_status(binding) != KVC_RT_OK) {
      outcome.problem = std::string("binding: ") +
                        kvc_rt_status_name(kvc_rt_binding_status(binding)) +
                        ": " + kvc_rt_binding_error(binding);
      return outcome;
    }
    if (!outBuffer.download(*result)) {
      outcome.problem = deviceProblem("cudaMemcpy of the output");
      outcome.cudaBroken = true;
      return outcome;
    }
  }
  // combine=fused: the split blocks left their arrival counters at zero
  // for the next call (the second call above found them so, or its output
  // would have stayed poisoned).
  if constexpr (kRunsKernels)
    if (v.fusedCombine) {
      outcome.problem = countersProblem(binding, v.batch * v.kvHeads);
      if (!outcome.problem.empty())
        return outcome;
    }
  outcome.problem =
      compareWithOracle(cache, seqs, lengths, v, tokenSeed, q, out,
                        outcome.relError);
  if (outcome.problem.empty() &&
      std::memcmp(out.data(), again.data(), elements * 4) != 0)
    outcome.problem = "a second call on the same inputs gave different bits";
  return outcome;
}

int usage() {
  std::fprintf(stderr, "usage: kvc_attention_check [--artifacts DIR] [--only "
                       "NAME[,NAME...]] [--seed N] [--tolerance X] [S ...]\n");
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  std::string artifacts = KVC_ATTENTION_ARTIFACTS_DIR;
  std::vector<std::string> only;
  std::vector<uint32_t> lengths;
  uint64_t seed = randomSeed();
  double tolerance = 1e-4;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> const char * {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    if (arg == "--artifacts" || arg == "--only" || arg == "--seed" ||
        arg == "--tolerance") {
      const char *text = value();
      if (!text)
        return usage();
      if (arg == "--artifacts")
        artifacts = text;
      else if (arg == "--only")
        only = split(text, ',');
      else if (arg == "--seed")
        seed = std::strtoull(text, nullptr, 0);
      else
        tolerance = std::strtod(text, nullptr);
    } else if (!parseLength(arg, lengths)) {
      return usage();
    }
  }
  if (lengths.empty())
    lengths = {1024, 4096};

  std::vector<Variant> variants;
  if (!readManifest("attention_check", artifacts + "/manifest.txt", variants,
                    parseVariant) ||
      !selectVariants("attention_check", variants, only))
    return 2;
#if KVC_ATTENTION_EMULATED
  const char *what = "kvc-gpu-pipeline code on CPU caches, kernels emulated";
#else
  const char *what = "kvc-cpu-pipeline code on CPU caches";
#endif
  if (int exitCode = startDevice("attention_check", what,
                                 variants.size() * lengths.size()))
    return exitCode;
  std::printf("seed: %llu (--seed %llu reproduces), tolerance %g\n",
              (unsigned long long)seed, (unsigned long long)seed, tolerance);
  std::printf("| variant | S | B | max rel err | s | result |\n");
  std::printf("| --- | --- | --- | --- | --- | --- |\n");
  const auto start = std::chrono::steady_clock::now();
  int passed = 0, failed = 0;
  bool broken = false;
  for (const Variant &v : variants) {
    auto entry = findEntry<AttentionEntry>(v.name);
    for (uint32_t S : lengths) {
      const auto rowStart = std::chrono::steady_clock::now();
      Outcome outcome;
      outcome.problem = notRunReason(v.name, entry != nullptr, broken);
      if (outcome.problem.empty())
        outcome = runVariant(v, entry, S, seed);
      const bool ok = outcome.problem.empty() && outcome.relError <= tolerance;
      (ok ? passed : failed)++;
      const double rowSeconds = std::chrono::duration<double>(
                                    std::chrono::steady_clock::now() - rowStart)
                                    .count();
      std::printf("| %s | %u | %u | %.3e | %.1f | %s%s%s |\n", v.name.c_str(),
                  S, v.batch, outcome.relError, rowSeconds,
                  ok ? "PASS" : "FAIL", outcome.problem.empty() ? "" : ": ",
                  outcome.problem.c_str());
      std::fflush(stdout);
      if (outcome.cudaBroken)
        broken = contextBroken();
    }
  }
  return finish(start, passed, failed);
}
