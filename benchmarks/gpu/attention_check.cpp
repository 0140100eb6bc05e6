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
// few outlier channels. Variants with a mask operand (`mask=`) hold S
// tokens in every entry, as a padded batch does: the mask hides entry b's
// first (S/2 + 37 b) mod S tokens (maskValues), and a third call with a
// mask one token short must give NaN everywhere (no read past the mask).
// Queries are fresh random values (seed printed), the output is poisoned with
// NaN bytes before each call, and the call is repeated: both results must be
// bitwise equal (a moving result is a race).
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

/// A rank-4 memref descriptor of any element type (the f32 or f16 mask).
struct MaskDescriptor {
  void *allocated, *aligned;
  int64_t offset, sizes[4], strides[4];
};

/// `_mlir_ciface_<name>(binding, q, mask, out)`: the same with a mask
/// operand.
using MaskedAttentionEntry = void (*)(kvc_rt_binding *, kvc_rt_memref_4d_f32 *,
                                      MaskDescriptor *, kvc_rt_memref_4d_f32 *);

struct Variant : PipelineFields {
  std::string name;
  uint32_t batch = 0, queryHeads = 0, kvHeads = 0, headDim = 0;
  std::vector<kvc_rt_encoding> encodings; ///< 1, or one per KV head
  uint32_t residual = 0, pageTokens = 0, splitTokens = 0;
  size_t window = 0;
  double softcap = 0;
  /// A mask operand (`mask=<f32|f16>[:heads]`): f16 or f32, one row for
  /// every query head or one a query head.
  bool masked = false, maskInHalf = false, maskPerHead = false;
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
    else if (extra == "mask=f32" || extra == "mask=f16" ||
             extra == "mask=f32:heads" || extra == "mask=f16:heads") {
      v.masked = true;
      v.maskInHalf = extra.compare(5, 3, "f16") == 0;
      v.maskPerHead = extra.size() > 8;
    } else if (!pipelineField(extra, v))
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
  // One mask covers the batch: every entry as long, as padding makes them.
  if (v.masked)
    return std::vector<uint32_t>(v.batch, S);
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

/// The mask of a masked variant, [B][1 | Hq][1][S], as the kernels read it
/// (an f16 mask's values rounded to fp16). Entry b's first (S/2 + 37 b) mod
/// S tokens are padding, hidden with -inf at even b and with the dtype's
/// lowest value at odd b (exports build masks either way); at S >= 1024
/// some splits see only padding. The other tokens get a bias: N(0, 1/2)
/// with one row for every query head, ALiBi's -2^(-8 (h + 1) / Hq) times
/// the distance to the newest token with a row a query head.
std::vector<float> maskValues(const Variant &v, uint32_t S,
                              std::mt19937_64 &rng) {
  const size_t rows = v.maskPerHead ? v.queryHeads : 1;
  const float lowest =
      v.maskInHalf ? -65504.0f : std::numeric_limits<float>::lowest();
  std::normal_distribution<float> normal(0.0f, 0.5f);
  std::vector<float> mask(size_t(v.batch) * rows * S);
  for (size_t b = 0; b < v.batch; ++b) {
    const size_t padding = (S / 2 + 37 * b) % S;
    for (size_t r = 0; r < rows; ++r) {
      const double slope = std::exp2(-8.0 * double(r + 1) / double(rows));
      float *row = mask.data() + (b * rows + r) * S;
      for (size_t j = 0; j < S; ++j) {
        float bias =
            v.maskPerHead ? float(-slope * double(S - 1 - j)) : normal(rng);
        if (j < padding)
          bias = b % 2 ? lowest : -std::numeric_limits<float>::infinity();
        row[j] = v.maskInHalf ? num::roundToHalf(bias) : bias;
      }
    }
  }
  return mask;
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
                              const std::vector<float> &mask,
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
        num::AttentionOptions sequenceOptions = options;
        if (v.masked) {
          // Every sequence holds as many tokens as the mask's rows.
          sequenceOptions.mask =
              mask.data() + b * (v.maskPerHead ? Hq : 1) * lengths[b];
          sequenceOptions.maskPerHead = v.maskPerHead;
        }
        if (folds)
          problems[i] =
              foldedOracle(v, tokenSeed, b, lengths[b], q.data() + b * Hq * D,
                           keys[i], values[i], sequenceOptions, expected[i]);
        else
          expected[i] = num::referenceAttention(
              queries.data() + b * Hq * D, Hq, 1, keys[i].data(),
              values[i].data(), H, lengths[b], D, sequenceOptions);
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

/// The mask's buffer (f32, or f16 bits) and its descriptor for `tokens` of
/// its S tokens a row (fewer: a mask of another length).
struct MaskBuffer {
  DeviceBuffer<float> f32;
  DeviceBuffer<uint16_t> f16;
  int64_t rows = 0, S = 0;

  bool upload(const Variant &v, const std::vector<float> &values,
              uint32_t tokens) {
    rows = v.maskPerHead ? v.queryHeads : 1;
    S = tokens;
    if (!v.maskInHalf)
      return f32.allocate(values.size()) && f32.upload(values);
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i)
      bits[i] = num::floatToHalf(values[i]);
    return f16.allocate(bits.size()) && f16.upload(bits);
  }
  MaskDescriptor descriptor(const Variant &v, int64_t tokens) const {
    void *data = v.maskInHalf ? static_cast<void *>(f16.ptr)
                              : static_cast<void *>(f32.ptr);
    return MaskDescriptor{data,
                          data,
                          0,
                          {int64_t(v.batch), rows, 1, tokens},
                          {rows * S, S, S, 1}};
  }
};

/// Runs the variant's entry point (with the mask's first `maskTokens`
/// tokens a row, if it has one).
void call(const Variant &v, void (*entry)(), kvc_rt_binding *binding,
          kvc_rt_memref_4d_f32 &q, const MaskBuffer &mask, int64_t maskTokens,
          kvc_rt_memref_4d_f32 &out) {
  if (!v.masked) {
    reinterpret_cast<AttentionEntry>(entry)(binding, &q, &out);
    return;
  }
  MaskDescriptor maskDesc = mask.descriptor(v, maskTokens);
  reinterpret_cast<MaskedAttentionEntry>(entry)(binding, &q, &maskDesc, &out);
}

Outcome runVariant(const Variant &v, void (*entry)(), uint32_t S,
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
  const std::vector<float> mask =
      v.masked ? maskValues(v, S, rng) : std::vector<float>();
  FloatBuffer qBuffer, outBuffer; // complete before the call
  MaskBuffer maskBuffer;
  if (!qBuffer.allocate(elements) || !outBuffer.allocate(elements) ||
      !qBuffer.upload(q) || (v.masked && !maskBuffer.upload(v, mask, S))) {
    outcome.problem = deviceProblem("cudaMalloc/cudaMemcpy");
    outcome.cudaBroken = true;
    return outcome;
  }
  auto descriptor = [&](float *data) {
    const int64_t Hq = v.queryHeads, D = v.headDim;
    return kvc_rt_memref_4d_f32{
        data, data, 0, {int64_t(v.batch), Hq, 1, D}, {Hq * D, D, D, 1}};
  };
  // Masked variants make a third call with a mask one token short.
  std::vector<float> out(elements), again(elements), misfit;
  std::vector<std::vector<float> *> results = {&out, &again};
  if (v.masked)
    results.push_back(&misfit);
  for (std::vector<float> *result : results) {
    kvc_rt_memref_4d_f32 qDesc = descriptor(qBuffer.ptr),
                         outDesc = descriptor(outBuffer.ptr);
    // The third call's output is zeroed instead: its NaN must be written.
    if (!(result == &misfit ? outBuffer.clear() : outBuffer.poison())) {
      outcome.problem = deviceProblem("poisoning the output");
      outcome.cudaBroken = true;
      return outcome;
    }
    call(v, entry, binding, qDesc, maskBuffer,
         result == &misfit ? int64_t(S) - 1 : int64_t(S), outDesc);
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
  outcome.problem = compareWithOracle(cache, seqs, lengths, v, tokenSeed, q,
                                      mask, out, outcome.relError);
  if (outcome.problem.empty() &&
      std::memcmp(out.data(), again.data(), elements * 4) != 0)
    outcome.problem = "a second call on the same inputs gave different bits";
  // With a mask shorter than the sequences, every output must be NaN (over
  // an output zeroed before the call).
  if (outcome.problem.empty() && v.masked &&
      !std::all_of(misfit.begin(), misfit.end(),
                   [](float x) { return std::isnan(x); }))
    outcome.problem = "a mask one token short gave outputs that are not NaN";
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
    auto entry = findEntry<void (*)()>(v.name);
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
