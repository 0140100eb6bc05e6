//===- SelectBitwidths.cpp - cost-model choice of K/V encodings -----------===//
//
// Collects the module's caches, asks the cost model (kvc/CostModel, no MLIR)
// for the encodings that minimise the predicted loss under the bit budget,
// writes them into the cache types and prints the report. With a context
// length, the cost model also picks each layer's token budget (each KV
// head's with granularity=head), written as the encoding's #kvc.evict.
//
//===----------------------------------------------------------------------===//

#include "kvc/CostModel/Selection.h"
#include "kvc/Dialect/KVC/Transforms/CacheRoots.h"
#include "kvc/Dialect/KVC/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/ToolOutputFile.h"

#include <map>

namespace mlir {
namespace kvc {
#define GEN_PASS_DEF_KVCSELECTBITWIDTHS
#include "kvc/Dialect/KVC/Transforms/Passes.h.inc"
} // namespace kvc
} // namespace mlir

using namespace mlir;
using namespace mlir::kvc;
namespace cost = ::kvc::cost;
namespace num = ::kvc::numerics;

/// The attribute holding per-KV-head encodings (granularity=head).
static constexpr StringLiteral kHeadEncodingsAttrName =
    KVCDialect::getHeadEncodingsAttrName();

namespace {

/// One layer and the cache roots that belong to it.
struct LayerCaches {
  cost::LayerSpec spec;
  CacheType type;
  SmallVector<std::pair<func::FuncOp, CacheRoot>> roots;
};

struct SelectBitwidthsPass
    : public mlir::kvc::impl::KVCSelectBitwidthsBase<SelectBitwidthsPass> {
  using Base::Base;
  void runOnOperation() override;

private:
  FailureOr<std::map<unsigned, LayerCaches>> collectLayers(ModuleOp module);
  LogicalResult checkStats(const cost::CalibrationStats &stats,
                           const std::map<unsigned, LayerCaches> &layers);
  LogicalResult apply(const cost::SelectionResult &result,
                      std::map<unsigned, LayerCaches> &layers);
  LogicalResult writeReport(ModuleOp module,
                            const cost::SelectionResult &result);
};

} // namespace

/// The dialect attribute of a candidate's element encoding.
static SideEncodingAttrInterface toAttr(MLIRContext *ctx,
                                        const cost::Candidate &c) {
  const num::SideEncoding &e = c.element;
  switch (e.kind) {
  case num::SideEncoding::Kind::Plain:
    return cast<SideEncodingAttrInterface>(PlainAttr::get(ctx));
  case num::SideEncoding::Kind::Quant:
    return cast<SideEncodingAttrInterface>(QuantAttr::get(
        ctx, e.quant.bits,
        e.quant.axis == num::QuantAxis::Channel ? QuantAxis::Channel
                                                : QuantAxis::Token,
        e.quant.group));
  case num::SideEncoding::Kind::FP8:
    return cast<SideEncodingAttrInterface>(FP8Attr::get(
        ctx, e.fp8 == num::FP8Format::E4M3 ? FP8Format::E4M3
                                           : FP8Format::E5M2));
  }
  llvm_unreachable("unknown side encoding");
}

/// The #kvc.evict of a chosen token budget (per KV head, if chosen so),
/// keeping `previous`'s two-tier demotion: the cost model chooses how many
/// tokens stay, not what happens to the others.
static EvictAttr toAttr(MLIRContext *ctx, const num::EvictPolicy &p,
                        EvictAttr previous = EvictAttr()) {
  DenseI64ArrayAttr headBudgets;
  if (!p.headBudgets.empty())
    headBudgets = DenseI64ArrayAttr::get(
        ctx, SmallVector<int64_t>(p.headBudgets.begin(), p.headBudgets.end()));
  return EvictAttr::get(ctx,
                        static_cast<EvictPolicy>(static_cast<uint32_t>(p.kind)),
                        unsigned(p.sink), unsigned(p.window),
                        unsigned(p.budget), headBudgets,
                        previous ? previous.getDemoteKey()
                                 : SideEncodingAttrInterface(),
                        previous ? previous.getDemoteValue()
                                 : SideEncodingAttrInterface());
}

/// The cache encoding of a key and a value candidate; value reductions of
/// the previous encoding are kept, and so is its eviction unless the cost
/// model chose the token budget (`chooseEvict`: `evict`, or none).
static EncodingAttr
makeEncoding(MLIRContext *ctx, const cost::Candidate &key,
             const cost::Candidate &value, unsigned residual,
             EncodingAttr previous, bool chooseEvict,
             const std::optional<num::EvictPolicy> &evict) {
  Attribute keyReduce =
      key.isPruned() ? PruneAttr::get(ctx, key.pruneKeep) : Attribute();
  Attribute evictAttr = previous ? previous.getEvict() : Attribute();
  if (chooseEvict)
    evictAttr = evict ? Attribute(toAttr(ctx, *evict,
                                         previous ? previous.getEvictPolicy()
                                                  : EvictAttr()))
                      : Attribute();
  return EncodingAttr::get(ctx, toAttr(ctx, key), toAttr(ctx, value), residual,
                           keyReduce,
                           previous ? previous.getValueReduce() : Attribute(),
                           evictAttr);
}

FailureOr<std::map<unsigned, LayerCaches>>
SelectBitwidthsPass::collectLayers(ModuleOp module) {
  std::map<unsigned, LayerCaches> layers;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    for (CacheRoot root : collectCacheRoots(func)) {
      auto type = cast<CacheType>(root.value.getType());
      EncodingAttr encoding = type.getEncoding();
      unsigned r = residual >= 0 ? unsigned(residual)
                   : encoding    ? encoding.getResidual()
                                 : 128u;
      cost::LayerSpec spec{root.layer, unsigned(type.getNumKVHeads()),
                           unsigned(type.getHeadDim()), r};
      auto [it, inserted] = layers.try_emplace(root.layer);
      LayerCaches &layer = it->second;
      if (inserted) {
        layer.spec = spec;
        layer.type = type;
      } else if (layer.spec.kvHeads != spec.kvHeads ||
                 layer.spec.headDim != spec.headDim ||
                 layer.spec.residual != spec.residual) {
        return mlir::emitError(root.value.getLoc())
               << "kvc-select-bitwidths: layer " << root.layer
               << " has caches of different shapes or residual windows";
      }
      layer.roots.push_back({func, root});
    }
  }
  if (layers.empty()) {
    emitError(module.getLoc())
        << "kvc-select-bitwidths: the module has no caches "
           "(run kvc-raise-attention first)";
    return failure();
  }
  return layers;
}

LogicalResult
SelectBitwidthsPass::checkStats(const cost::CalibrationStats &stats,
                                const std::map<unsigned, LayerCaches> &layers) {
  for (const auto &[id, layer] : layers) {
    Location loc = layer.roots.front().second.value.getLoc();
    const cost::LayerStats *s = stats.find(id);
    if (!s)
      return mlir::emitError(loc)
             << "kvc-select-bitwidths: layer " << id << " has no statistics in "
             << stats.path << " (expected tensors layer" << id << ".q/k/v)";
    if (s->headDim != layer.spec.headDim)
      return mlir::emitError(loc)
             << "kvc-select-bitwidths: layer " << id << " has head_dim "
             << layer.spec.headDim << " but its statistics in " << stats.path
             << " have head_dim " << s->headDim;
    if (s->numKVHeads != layer.spec.kvHeads)
      return mlir::emitError(loc)
             << "kvc-select-bitwidths: layer " << id << " has "
             << layer.spec.kvHeads << " KV heads but its statistics in "
             << stats.path << " have " << s->numKVHeads;
  }
  return success();
}

LogicalResult
SelectBitwidthsPass::apply(const cost::SelectionResult &result,
                           std::map<unsigned, LayerCaches> &layers) {
  MLIRContext *ctx = &getContext();
  // Per layer: the chosen key and value candidates of every head (one entry
  // for granularity=layer).
  std::map<unsigned, std::pair<SmallVector<cost::Candidate>,
                               SmallVector<cost::Candidate>>>
      chosen;
  // Per layer: its token budget (per KV head, if its heads chose their
  // own).
  std::map<unsigned, std::optional<num::EvictPolicy>> evictions;
  const bool chooseEvict = result.context > 0;
  for (const cost::SlotChoice &slot : result.slots) {
    auto &sides = chosen[slot.layer];
    (slot.side == cost::Side::Key ? sides.first : sides.second)
        .push_back(slot.candidate);
    evictions[slot.layer] = std::nullopt;
  }
  for (const cost::LayerEviction &eviction : result.evictions)
    evictions[eviction.layer] = eviction.policy;
  for (auto &[id, layer] : layers) {
    auto &[keys, values] = chosen.at(id);
    const unsigned dim = layer.spec.headDim;
    // The type carries the widest choice of each side.
    auto widest = [&](ArrayRef<cost::Candidate> cs) {
      const cost::Candidate *best = &cs.front();
      for (const cost::Candidate &c : cs)
        if (c.bitsPerElement(dim) > best->bitsPerElement(dim))
          best = &c;
      return *best;
    };
    for (auto &[func, root] : layer.roots) {
      auto type = cast<CacheType>(root.value.getType());
      EncodingAttr previous = type.getEncoding();
      const std::optional<num::EvictPolicy> &evict = evictions.at(id);
      EncodingAttr encoding =
          makeEncoding(ctx, widest(keys), widest(values), layer.spec.residual,
                       previous, chooseEvict, evict);
      auto emitError = [&]() {
        return mlir::emitError(root.value.getLoc())
               << "kvc-select-bitwidths: layer " << id << ": ";
      };
      CacheType newType =
          CacheType::getChecked(emitError, ctx, type.getShape(),
                                type.getElementType(), encoding);
      if (!newType ||
          failed(propagateCacheType(root.value, newType,
                                    "kvc-select-bitwidths")))
        return failure();
      if (keys.size() > 1) {
        SmallVector<Attribute> heads;
        for (size_t h = 0; h < keys.size(); ++h)
          // Eviction stays on the type's encoding only, per-head budgets
          // included (its head_budgets).
          heads.push_back(makeEncoding(ctx, keys[h], values[h],
                                       layer.spec.residual, previous,
                                       /*chooseEvict=*/true, std::nullopt));
        auto attr = ArrayAttr::get(ctx, heads);
        if (auto arg = dyn_cast<BlockArgument>(root.value))
          func.setArgAttr(arg.getArgNumber(), kHeadEncodingsAttrName, attr);
        else
          root.value.getDefiningOp()->setAttr(kHeadEncodingsAttrName, attr);
      }
    }
  }
  // The chosen token budgets are the contract: each kvc.evict applies the
  // policy its cache's encoding now declares, and goes away where the layer
  // keeps every token.
  if (chooseEvict) {
    WalkResult walk = getOperation().walk([&](EvictOp op) -> WalkResult {
      EncodingAttr encoding = op.getCache().getType().getEncoding();
      if (!encoding)
        return WalkResult::advance();
      EvictAttr declared = encoding.getEvictPolicy();
      if (!declared) {
        op.getResult().replaceAllUsesWith(op.getCache());
        op.erase();
        return WalkResult::advance();
      }
      if (declared.getPolicy() != EvictPolicy::Streaming && !op.getScores()) {
        op.emitOpError("kvc-select-bitwidths: the cost model chose an H2O "
                       "token budget for this cache, but this eviction has no "
                       "scores to rank tokens by");
        return WalkResult::interrupt();
      }
      op.setPolicyAttr(declared);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();
  }
  // Signatures follow the retyped arguments and returned values.
  for (auto func : getOperation().getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    SmallVector<Type> results(func.getResultTypes());
    func.walk([&](func::ReturnOp op) {
      for (auto [index, operand] : llvm::enumerate(op.getOperands()))
        results[index] = operand.getType();
    });
    func.setType(FunctionType::get(ctx, func.getBody().getArgumentTypes(),
                                   results));
  }
  return success();
}

LogicalResult
SelectBitwidthsPass::writeReport(ModuleOp module,
                                 const cost::SelectionResult &result) {
  if (report == "none")
    return success();
  std::string errorMessage;
  auto file = openOutputFile(reportFile.getValue(), &errorMessage);
  if (!file)
    return emitError(module.getLoc())
           << "kvc-select-bitwidths: " << errorMessage;
  // "-" would be stdout, where the IR goes: the report goes to stderr.
  llvm::raw_ostream &os = reportFile == "-" ? llvm::errs() : file->os();
  if (report == "json")
    os << llvm::formatv("{0:2}", cost::reportToJSON(result)) << "\n";
  else
    cost::printReport(result, os);
  if (reportFile != "-")
    file->keep();
  return success();
}

void SelectBitwidthsPass::runOnOperation() {
  ModuleOp module = getOperation();
  auto fail = [&](const Twine &message) {
    emitError(module.getLoc()) << "kvc-select-bitwidths: " << message;
    signalPassFailure();
  };
  if (!(budget > 0.0))
    return fail("option 'budget' (average bits per element) must be > 0");
  if (granularity != "layer" && granularity != "head")
    return fail("bad granularity '" + granularity +
                "' (expected layer or head)");
  if (report != "text" && report != "json" && report != "none")
    return fail("bad report '" + report + "' (expected text, json or none)");
  if (prune && stats.empty())
    return fail("'prune' needs 'stats': pruning has no analytic proxy");
  if (context < 0)
    return fail("option 'context' (tokens the token budgets are planned "
                "for) must be >= 0, got " + Twine(context));
  if (context > 0 && stats.empty())
    return fail("'context' needs 'stats': eviction has no analytic proxy");
  if (!evictFractions.empty() && context == 0)
    return fail("'evict-fractions' needs 'context' (the context length the "
                "token budgets are fractions of)");
  std::vector<double> fractions = cost::defaultEvictFractions();
  if (!evictFractions.empty())
    fractions.assign(evictFractions.begin(), evictFractions.end());
  if (std::string problem = cost::checkEvictFractions(fractions);
      !problem.empty())
    return fail(problem);

  FailureOr<std::map<unsigned, LayerCaches>> layers = collectLayers(module);
  if (failed(layers))
    return signalPassFailure();

  std::optional<cost::CalibrationStats> calibration;
  if (!stats.empty()) {
    llvm::Expected<cost::CalibrationStats> loaded = cost::loadStats(stats);
    if (!loaded)
      return fail(llvm::toString(loaded.takeError()));
    calibration = std::move(*loaded);
    if (failed(checkStats(*calibration, *layers)))
      return signalPassFailure();
  }

  std::vector<cost::LayerSpec> specs;
  for (const auto &entry : *layers)
    specs.push_back(entry.second.spec);
  cost::SelectionOptions options;
  options.budget = budget;
  options.granularity = granularity == "head" ? cost::Granularity::Head
                                              : cost::Granularity::Layer;
  options.candidates.prune = prune;
  options.candidates.pageTokens = pageTokens;
  options.threads = threads;
  options.context = size_t(context);
  options.evictFractions = fractions;
  llvm::Expected<cost::SelectionResult> result = cost::selectBitwidths(
      specs, calibration ? &*calibration : nullptr, options);
  if (!result)
    return fail(llvm::toString(result.takeError()));
  if (failed(apply(*result, *layers)) || failed(writeReport(module, *result)))
    return signalPassFailure();
}
