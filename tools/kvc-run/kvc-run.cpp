//===- kvc-run.cpp - run compiled decode steps against the oracle ---------===//
//
// Compiles a decode step (append the new token, attend over the cache) with
// kvc-cpu-pipeline, JIT-runs it step after step on a runtime cache with
// fresh random tokens, and compares every output with the numerics
// library's fp64 reference attention over the same compressed cache.
//
//===----------------------------------------------------------------------===//

#include "Invoke.h"

#include "kvc/Dialect/KVC/IR/KVCOps.h"
#include "kvc/ExecutionEngine/JitFunction.h"
#include "kvc/Dialect/KVC/Transforms/Passes.h"
#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/Evict.h"
#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/ReferenceAttention.h"
#include "kvc/Pipelines/Pipelines.h"
#include "kvc_runtime_binding.h"

#include "Geometry.h" // runtime/lib: numerics <-> C encodings

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <random>

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;
namespace cl = llvm::cl;

static cl::opt<std::string> inputFile(cl::Positional,
                                      cl::desc("<decode step .mlir>"),
                                      cl::init("-"));
static cl::opt<std::string> entryName("entry",
                                      cl::desc("The decode-step function"),
                                      cl::init("step"));
static cl::opt<unsigned> numSteps("steps", cl::desc("Decode steps to run"),
                                  cl::init(300));
static cl::opt<unsigned> seed("seed", cl::desc("Random seed (0: random)"),
                              cl::init(0));
static cl::opt<unsigned> pageTokens("page-tokens",
                                    cl::desc("Tokens per runtime page"),
                                    cl::init(64));
static cl::opt<std::string>
    spec("spec", cl::desc("Run kvc-decouple-compression with this spec first"),
         cl::init(""));
static cl::opt<std::string> invokeEntry(
    "invoke",
    cl::desc("Call this function of tensors once on --inputs and write its "
             "results to --outputs, instead of running decode steps"),
    cl::init(""));
static cl::list<std::string>
    inputFiles("inputs", cl::CommaSeparated,
               cl::desc("safetensors files with the arguments of --invoke, "
                        "by kvc.name or arg<i>"));
static cl::opt<std::string>
    outputFile("outputs", cl::desc("safetensors file --invoke writes"),
               cl::init(""));
static cl::opt<double> tolerance(
    "tolerance",
    cl::desc("Largest |compiled - oracle| allowed, relative to max |oracle| "
             "(the compiled code reads the same dequantized values as the "
             "oracle, so only f32 rounding separates them)"),
    cl::init(1e-4));

namespace {

/// What kvc-run learns from the decode step's signature and its kvc.attend.
struct StepShape {
  int64_t batch, queryHeads, kvHeads, headDim;
  num::CacheEncoding encoding;
  /// One per KV head: `encoding` unless the cache has kvc.head_encodings.
  std::vector<num::CacheEncoding> headEncodings;
  num::AttentionOptions attention;
  /// The step returns kvc.attend's attention mass as a third result.
  bool returnsMass = false;
  /// The step's kvc.evict, if any. With a score-based policy the step
  /// takes the accumulated scores as a fifth argument and returns them
  /// updated as its third result (both padded to a static length).
  std::optional<num::EvictPolicy> evict;
  /// Two-tier: the encodings evicted tokens are kept at.
  std::optional<num::CacheEncoding> demote;
  bool carriesScores = false;

  bool hasPerHeadEncodings() const {
    return llvm::any_of(headEncodings, [&](const num::CacheEncoding &head) {
      return !(head == encoding);
    });
  }
};

} // namespace

static int fail(const llvm::Twine &message) {
  llvm::errs() << "kvc-run: error: " << message << "\n";
  return 1;
}

/// Checks the decode-step signature and reads the attention options.
static FailureOr<StepShape> inspectStep(func::FuncOp func) {
  auto error = [&](const llvm::Twine &message) {
    func.emitError() << "kvc-run: " << message;
    return failure();
  };
  FunctionType type = func.getFunctionType();
  SmallVector<EvictOp> evicts;
  func.walk([&](EvictOp op) { evicts.push_back(op); });
  if (evicts.size() > 1)
    return error("expects at most one kvc.evict");
  bool carriesScores = !evicts.empty() && evicts[0].getScores();
  if (carriesScores ? type.getNumInputs() != 5 || type.getNumResults() != 3
                    : type.getNumInputs() != 4 ||
                          (type.getNumResults() != 2 &&
                           type.getNumResults() != 3))
    return error("expects (cache, q, k, v) -> (out, cache) or "
                 "(out, cache, attention mass); with a score-based "
                 "kvc.evict, (cache, q, k, v, scores) -> (out, cache, "
                 "scores)");
  auto cache = dyn_cast<CacheType>(type.getInput(0));
  auto q = dyn_cast<RankedTensorType>(type.getInput(1));
  auto k = dyn_cast<RankedTensorType>(type.getInput(2));
  if (!cache || !q || !k || !q.hasStaticShape() || !k.hasStaticShape() ||
      !q.getElementType().isF32() || !k.getElementType().isF32() ||
      q.getDimSize(2) != 1 || k.getDimSize(2) != 1 || cache.hasDynamicBatch())
    return error("expects a static batch, f32 q/k/v with one new token");
  SmallVector<AttendOp> attends;
  func.walk([&](AttendOp op) { attends.push_back(op); });
  if (attends.size() != 1 || attends[0].getMask())
    return error("expects exactly one kvc.attend, without a mask operand");
  AttendOp attend = attends[0];
  StepShape shape;
  shape.returnsMass = type.getNumResults() == 3;
  shape.carriesScores = carriesScores;
  if (!evicts.empty()) {
    shape.evict = evicts[0].getPolicy().toNumerics();
    shape.demote = evicts[0].getPolicy().getDemoteNumerics();
  }
  if (carriesScores && type.getInput(4) != type.getResult(2))
    return error("the scores argument and result must have one type");
  if (shape.returnsMass) {
    // Results are caller-allocated out-parameters, so the step pads the
    // mass (batch x kv_heads x ?) into a static tensor.
    auto mass = dyn_cast<RankedTensorType>(type.getResult(2));
    if (!attend.getMass() || !mass || !mass.hasStaticShape() ||
        mass.getRank() != 3 || !mass.getElementType().isF32() ||
        mass.getDimSize(0) != cache.getBatch() ||
        mass.getDimSize(1) != cache.getNumKVHeads() ||
        mass.getDimSize(2) < int64_t(numSteps))
      return error("a third result must be kvc.attend's attention mass (or "
                   "the accumulated scores), padded into a static batch x "
                   "kv_heads x L f32 tensor with L >= --steps");
  }
  shape.batch = cache.getBatch();
  shape.queryHeads = q.getDimSize(1);
  shape.kvHeads = cache.getNumKVHeads();
  shape.headDim = cache.getHeadDim();
  if (EncodingAttr encoding = cache.getEncoding())
    shape.encoding = encoding.toNumerics();
  for (EncodingAttr head : getKVHeadEncodings(func.getArgument(0)))
    shape.headEncodings.push_back(head.toNumerics());
  shape.headEncodings.resize(shape.kvHeads, shape.encoding);
  shape.attention.scale = attend.getEffectiveScale();
  shape.attention.causal = attend.getCausal();
  shape.attention.window = attend.getWindow().value_or(0);
  shape.attention.softcap =
      attend.getSoftcap() ? attend.getSoftcap()->convertToDouble() : 0.0;
  return shape;
}

/// After step `t` (n tokens): applies the policy to the oracle's live sets,
/// ranking by the step's returned scores, and checks that the runtime holds
/// exactly those live tokens.
static int checkEviction(kvc_rt_cache *cache, ArrayRef<kvc_rt_seq> seqs,
                         const num::EvictPolicy &policy,
                         const std::optional<::kvc::exec::HostTensor> &scores,
                         size_t n, std::vector<std::vector<uint8_t>> &live,
                         size_t &evicted, unsigned t,
                         function_ref<void(size_t, size_t, size_t)> onEvict) {
  size_t kvHeads = live.size() / seqs.size();
  std::vector<uint8_t> runtimeLive(n);
  for (size_t bi = 0; bi < seqs.size(); ++bi)
    for (size_t h = 0; h < kvHeads; ++h) {
      std::vector<uint8_t> &keep = live[bi * kvHeads + h];
      const float *rowScores = nullptr;
      if (scores)
        rowScores = reinterpret_cast<const float *>(scores->data()) +
                    (bi * kvHeads + h) * scores->shape()[2];
      const std::vector<uint8_t> was = keep;
      size_t before = std::count(keep.begin(), keep.end(), uint8_t(1));
      evicted += before - num::selectKeptTokens(policy.forHead(h), rowScores, n,
                                                keep.data());
      for (size_t token = 0; token < n; ++token)
        if (was[token] && !keep[token])
          onEvict(bi, h, token);
      if (kvc_rt_live_tokens(cache, seqs[bi], 0, uint32_t(h),
                             runtimeLive.data(), n) != KVC_RT_OK)
        return fail(llvm::Twine("kvc_rt_live_tokens: ") +
                    kvc_rt_last_error());
      if (runtimeLive != keep)
        return fail(llvm::formatv("step {0}: sequence {1}, KV head {2}: the "
                                  "runtime's live tokens differ from the "
                                  "oracle's",
                                  t, bi, h));
    }
  return 0;
}

/// Runs the JIT-compiled step `numSteps` times and compares with the oracle.
static int runSteps(::kvc::exec::JitFunction &step, const StepShape &shape) {
  std::vector<kvc_rt_encoding> encodings;
  if (shape.hasPerHeadEncodings())
    for (const num::CacheEncoding &head : shape.headEncodings)
      encodings.push_back(::kvc::rt::toCEncoding(head));
  else
    encodings.push_back(::kvc::rt::toCEncoding(shape.encoding));
  kvc_rt_cache_config config;
  kvc_rt_config_init(&config);
  config.backend = KVC_RT_BACKEND_CPU;
  config.num_layers = 1;
  config.kv_heads = shape.kvHeads;
  config.head_dim = shape.headDim;
  config.page_tokens = pageTokens;
  config.max_sequences = shape.batch;
  config.max_tokens = numSteps;
  config.pages_per_layer =
      shape.batch * ((numSteps + pageTokens - 1) / pageTokens);
  config.encodings_per_layer = unsigned(encodings.size());
  config.encodings = encodings.data();
  kvc_rt_cache *cache = nullptr;
  if (kvc_rt_cache_create(&config, &cache) != KVC_RT_OK)
    return fail(llvm::Twine("kvc_rt_cache_create: ") + kvc_rt_last_error());
  std::vector<kvc_rt_seq> seqs(shape.batch);
  for (kvc_rt_seq &seq : seqs)
    if (kvc_rt_sequence_create(cache, &seq) != KVC_RT_OK)
      return fail(llvm::Twine("kvc_rt_sequence_create: ") +
                  kvc_rt_last_error());
  kvc_rt_binding *binding = nullptr;
  if (kvc_rt_binding_create(cache, 0, seqs.data(), shape.batch, &binding) !=
      KVC_RT_OK)
    return fail(llvm::Twine("kvc_rt_binding_create: ") + kvc_rt_last_error());

  unsigned actualSeed = seed ? unsigned(seed) : std::random_device{}();
  std::mt19937 rng(actualSeed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  int64_t b = shape.batch, hq = shape.queryHeads, hkv = shape.kvHeads,
          d = shape.headDim;
  // Keys get a few outlier channels, as real keys do.
  std::vector<float> channelScale(d, 1.0f);
  for (int64_t c = 0; c < d; c += 16)
    channelScale[c] = 8.0f;
  // History of fp16-rounded tokens per (batch, kv head): [n][D].
  std::vector<std::vector<float>> keys(b * hkv), values(b * hkv);
  // Eviction: the oracle's live tokens per (batch, kv head), and the
  // accumulated scores the step carries (its own f32 values are what it
  // ranks by, so the oracle ranks by them too and checks them separately).
  std::vector<std::vector<uint8_t>> live(b * hkv);
  // Two-tier: the rows of demoted tokens per (batch, kv head): token ->
  // (key row, value row), fixed when the token is evicted.
  std::vector<std::map<size_t, std::pair<std::vector<float>,
                                         std::vector<float>>>>
      demoted(b * hkv);
  std::optional<::kvc::exec::HostTensor> scores;
  if (shape.carriesScores) {
    const auto &info = step.results().back();
    scores.emplace(info.shape, "F32");
    std::memset(scores->data(), 0, scores->bytes());
  }
  size_t evicted = 0;
  double worst = 0, worstGap = 0, worstMass = 0, worstEvictGap = 0;
  for (unsigned t = 0; t < numSteps; ++t) {
    ::kvc::exec::HostTensor q({b, hq, 1, d}, "F32"), k({b, hkv, 1, d}, "F32"),
        v({b, hkv, 1, d}, "F32");
    auto *qData = reinterpret_cast<float *>(q.data());
    auto *kData = reinterpret_cast<float *>(k.data());
    auto *vData = reinterpret_cast<float *>(v.data());
    for (int64_t i = 0; i < q.numElements(); ++i)
      qData[i] = normal(rng);
    for (int64_t i = 0; i < b * hkv; ++i)
      for (int64_t c = 0; c < d; ++c) {
        float key = normal(rng) * channelScale[c], value = normal(rng);
        kData[i * d + c] = key;
        vData[i * d + c] = value;
        keys[i].push_back(num::roundToHalf(key));
        values[i].push_back(num::roundToHalf(value));
      }
    // The output is poisoned before the call, so a step that writes
    // nothing cannot pass.
    std::vector<const ::kvc::exec::HostTensor *> inputs = {&q, &k, &v};
    if (scores)
      inputs.push_back(&*scores);
    for (std::vector<uint8_t> &head : live)
      head.push_back(1);
    // The step may update its scores argument in place.
    std::vector<float> scoresBefore;
    if (scores) {
      const auto *data = reinterpret_cast<const float *>(scores->data());
      scoresBefore.assign(data, data + scores->numElements());
    }
    auto outputs = step.call(inputs, {binding});
    if (!outputs)
      return fail(llvm::Twine("step ") + llvm::Twine(t) + ": " +
                  llvm::toString(outputs.takeError()));
    const auto *outData =
        reinterpret_cast<const float *>((*outputs)[0].data());
    size_t n = t + 1;
    for (int64_t bi = 0; bi < b; ++bi) {
      std::vector<float> simK, simV, plainK, plainV, storedK, storedV;
      for (int64_t h = 0; h < hkv; ++h) {
        const std::vector<float> &kh = keys[bi * hkv + h];
        const std::vector<float> &vh = values[bi * hkv + h];
        const num::CacheEncoding &encoding = shape.headEncodings[h];
        auto sk = num::simulateCacheSide(kh.data(), n, d, encoding.key,
                                         encoding.residual);
        auto sv = num::simulateCacheSide(vh.data(), n, d, encoding.value,
                                         encoding.residual);
        // Without eviction every token would read its stored rows.
        storedK.insert(storedK.end(), sk.begin(), sk.end());
        storedV.insert(storedV.end(), sv.begin(), sv.end());
        for (const auto &[token, rows] : demoted[bi * hkv + h]) {
          std::copy(rows.first.begin(), rows.first.end(),
                    sk.begin() + token * d);
          std::copy(rows.second.begin(), rows.second.end(),
                    sv.begin() + token * d);
        }
        simK.insert(simK.end(), sk.begin(), sk.end());
        simV.insert(simV.end(), sv.begin(), sv.end());
        plainK.insert(plainK.end(), kh.begin(), kh.end());
        plainV.insert(plainV.end(), vh.begin(), vh.end());
      }
      const float *qb = &qData[bi * hq * d];
      // Demoted tokens stay visible (with their demoted rows).
      std::vector<uint8_t> keep;
      for (int64_t h = 0; h < hkv; ++h)
        keep.insert(keep.end(), live[bi * hkv + h].begin(),
                    live[bi * hkv + h].end());
      if (shape.demote)
        std::fill(keep.begin(), keep.end(), uint8_t(1));
      num::AttentionOptions attention = shape.attention;
      attention.keep = keep.data();
      std::vector<double> expectedMass(hkv * n, 0.0);
      std::vector<double> expected = num::referenceAttention(
          qb, hq, 1, simK.data(), simV.data(), hkv, n, d, attention,
          expectedMass.data());
      if (shape.returnsMass) {
        const ::kvc::exec::HostTensor &massTensor = (*outputs)[1];
        const int64_t padded = massTensor.shape()[2];
        const auto *massData =
            reinterpret_cast<const float *>(massTensor.data());
        // Probabilities sum to the GQA group size per KV head: compare
        // absolutely. Past the n tokens the padding must be 0.
        // Carried scores: H2O's are the previous step's plus this step's
        // mass; SnapKV ranks by the mass of its observation window (here
        // the step's query) alone.
        const float *before =
            scores && shape.evict->kind == num::EvictKind::H2O
                ? scoresBefore.data()
                : nullptr;
        for (int64_t h = 0; h < hkv; ++h)
          for (int64_t j = 0; j < padded; ++j) {
            size_t at = (bi * hkv + h) * padded + j;
            double want = j < int64_t(n) ? expectedMass[h * n + j] : 0.0;
            if (before)
              want += before[at];
            double got = massData[at];
            worstMass = std::isnan(got)
                            ? INFINITY
                            : std::max(worstMass, std::fabs(got - want));
          }
      }
      std::vector<double> uncompressed = num::referenceAttention(
          qb, hq, 1, plainK.data(), plainV.data(), hkv, n, d, attention);
      if (shape.evict) {
        // What eviction changes: the same cache with every token live.
        std::vector<double> allLive = num::referenceAttention(
            qb, hq, 1, storedK.data(), storedV.data(), hkv, n, d,
            shape.attention);
        double moved = 0, size = 0;
        for (size_t i = 0; i < allLive.size(); ++i) {
          moved = std::max(moved, std::fabs(allLive[i] - expected[i]));
          size = std::max(size, std::fabs(expected[i]));
        }
        worstEvictGap = std::max(worstEvictGap, moved / std::max(size, 1e-30));
      }
      double scale = 0, error = 0, gap = 0;
      for (size_t i = 0; i < expected.size(); ++i) {
        scale = std::max(scale, std::fabs(expected[i]));
        double got = outData[bi * hq * d + i];
        error = std::isnan(got) ? INFINITY
                                : std::max(error, std::fabs(got - expected[i]));
        gap = std::max(gap, std::fabs(uncompressed[i] - expected[i]));
      }
      worst = std::max(worst, error / std::max(scale, 1e-30));
      worstGap = std::max(worstGap, gap / std::max(scale, 1e-30));
    }
    if (shape.evict) {
      if (scores)
        std::memcpy(scores->data(), (*outputs)[1].data(), scores->bytes());
      // A demoted row: what the oracle read for the token this step,
      // through the demotion encoding alone.
      auto onEvict = [&](size_t bi, size_t h, size_t token) {
        if (!shape.demote)
          return;
        const num::CacheEncoding &encoding = shape.headEncodings[h];
        std::pair<std::vector<float>, std::vector<float>> rows;
        for (bool value : {false, true}) {
          const std::vector<float> &history =
              value ? values[bi * hkv + h] : keys[bi * hkv + h];
          std::vector<float> now = num::simulateCacheSide(
              history.data(), n, d, value ? encoding.value : encoding.key,
              encoding.residual);
          std::vector<float> &row = value ? rows.second : rows.first;
          row.resize(d);
          num::demoteRow(value ? shape.demote->value : shape.demote->key,
                         now.data() + token * d, unsigned(d), row.data());
        }
        demoted[bi * hkv + h][token] = std::move(rows);
      };
      if (int error = checkEviction(cache, seqs, *shape.evict, scores, n,
                                    live, evicted, t, onEvict))
        return error;
    }
  }
  kvc_rt_binding_destroy(binding);
  kvc_rt_cache_destroy(cache);

  bool compressed = !shape.encoding.key.isPlain() ||
                    !shape.encoding.value.isPlain();
  llvm::outs() << llvm::formatv(
      "kvc-run: {0} steps, batch {1}, {2} query / {3} KV heads, head_dim {4}, "
      "key {5}, value {6}, residual {7}, seed {8}\n",
      unsigned(numSteps), b, hq, hkv, d, shape.encoding.key.toString(),
      shape.encoding.value.toString(), shape.encoding.residual, actualSeed);
  if (shape.hasPerHeadEncodings())
    for (auto [h, head] : llvm::enumerate(shape.headEncodings))
      llvm::outs() << llvm::formatv("kvc-run: KV head {0}: key {1}, value {2}\n",
                                    h, head.key.toString(),
                                    head.value.toString());
  llvm::outs() << llvm::formatv(
      "max |compiled - oracle| / max |oracle| = {0:e2} (tolerance {1:e2}); "
      "compression moves the output by {2:e2}\n",
      worst, double(tolerance), worstGap);
  if (shape.returnsMass)
    llvm::outs() << llvm::formatv(
        "attention {0}: max |compiled - oracle| = {1:e2} (tolerance "
        "{2:e2})\n",
        shape.carriesScores ? "scores" : "mass", worstMass,
        double(tolerance));
  if (shape.evict)
    llvm::outs() << llvm::formatv(
        "eviction {0}: {1} tokens evicted{3}, the runtime's live tokens "
        "equal the oracle's after every step; eviction moves the output by "
        "{2:e2}\n",
        num::formatEvictPolicy(*shape.evict), evicted, worstEvictGap,
        shape.demote ? " (kept as key " + shape.demote->key.toString() +
                           ", value " + shape.demote->value.toString() + ")"
                     : std::string());
  if (!(worst <= tolerance))
    return fail("the compiled step is further from the oracle than the "
                "tolerance");
  if (shape.returnsMass && !(worstMass <= tolerance))
    return fail("the compiled attention mass is further from the oracle "
                "than the tolerance");
  if (shape.evict && !(worstEvictGap > 10 * tolerance))
    return fail("eviction changes the output by less than 10x the "
                "tolerance: the check cannot tell evicted from kept tokens");
  // A compressed cache that does not change the output would make this
  // check meaningless (e.g. an encoding silently dropped).
  if (compressed && !(worstGap > 10 * tolerance))
    return fail("the encoding changes the output by less than 10x the "
                "tolerance: the check cannot tell compressed from plain");
  llvm::outs() << "PASS\n";
  return 0;
}

int main(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  registerPassManagerCLOptions();
  cl::ParseCommandLineOptions(
      argc, argv,
      "kvc-run: compile a decode step with kvc-cpu-pipeline and run it "
      "against the numerics oracle\n\n"
      "The entry takes (!kvc.cache<BxHx?xD>, q: tensor<BxHqx1xDxf32>, "
      "k, v: tensor<BxHx1xDxf32>) and returns (out, cache).\n\n"
      "With --invoke=F --inputs=a.safetensors --outputs=b.safetensors, "
      "calls the tensor function F once instead.\n");

  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registry.insert<KVCDialect>();
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  MLIRContext context(registry);
  // Located messages, not IR dumps of the op (kvc-opt style).
  context.printOpOnDiagnostic(false);

  std::string errorMessage;
  auto file = openInputFile(inputFile, &errorMessage);
  if (!file)
    return fail(errorMessage);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return 1;

  if (!spec.empty()) {
    PassManager pm(&context);
    KVCDecoupleCompressionOptions options;
    options.spec = spec;
    options.overwrite = true;
    pm.addPass(createKVCDecoupleCompression(options));
    if (failed(pm.run(*module)))
      return 1;
  }
  if (!invokeEntry.empty()) {
    if (outputFile.empty())
      return fail("--invoke needs --outputs");
    ::kvc::run::InvokeOptions options;
    options.entry = invokeEntry;
    options.inputs.assign(inputFiles.begin(), inputFiles.end());
    options.outputs = outputFile;
    options.pageTokens = pageTokens;
    return ::kvc::run::invokeFunction(*module, options);
  }
  auto entry = module->lookupSymbol<func::FuncOp>(entryName);
  if (!entry)
    return fail("no function @" + entryName);
  FailureOr<StepShape> shape = inspectStep(entry);
  if (failed(shape))
    return 1;
  auto step = ::kvc::exec::JitFunction::compile(
      *module, entryName, pageTokens,
      [](PassManager &pm) { return applyPassManagerCLOptions(pm); });
  if (!step)
    return fail(llvm::toString(step.takeError()));
  return runSteps(**step, *shape);
}
