//===- KVCAttrs.cpp - kvc attributes --------------------------------------===//
//
// Verifiers of the encoding attributes and their mapping onto the numerics
// library, which alone defines what each encoding means.
//
//===----------------------------------------------------------------------===//

#include "kvc/Dialect/KVC/IR/KVCAttrs.h"
#include "kvc/Dialect/KVC/IR/KVCDialect.h"

#include "kvc/Numerics/Quantize.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

#include "kvc/Dialect/KVC/IR/KVCEnums.cpp.inc"

#include "kvc/Dialect/KVC/IR/KVCAttrInterfaces.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "kvc/Dialect/KVC/IR/KVCAttrs.cpp.inc"

void KVCDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "kvc/Dialect/KVC/IR/KVCAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// Side encodings
//===----------------------------------------------------------------------===//

LogicalResult PlainAttr::verifyForHeadDim(int64_t, StringRef,
                                          function_ref<InFlightDiagnostic()>) const {
  return success();
}

num::SideEncoding PlainAttr::toNumerics() const { return num::SideEncoding::plain(); }

LogicalResult QuantAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                unsigned bits, QuantAxis axis,
                                unsigned group) {
  // The numerics library owns the rule; the attribute reports it.
  std::string problem = num::validateQuantSpec(
      {bits, kvc::toNumerics(axis), group});
  if (!problem.empty())
    return emitError() << "quantization " << problem;
  return success();
}

LogicalResult
QuantAttr::verifyForHeadDim(int64_t headDim, StringRef side,
                            function_ref<InFlightDiagnostic()> emitError) const {
  if (getAxis() == QuantAxis::Token && headDim % getGroup() != 0)
    return emitError() << side << " encoding: token-axis group " << getGroup()
                       << " must divide the " << side << " dimension "
                       << headDim;
  return success();
}

num::SideEncoding QuantAttr::toNumerics() const {
  return num::SideEncoding::quantized(getBits(), kvc::toNumerics(getAxis()),
                                      getGroup());
}

LogicalResult FP8Attr::verifyForHeadDim(int64_t, StringRef,
                                        function_ref<InFlightDiagnostic()>) const {
  return success();
}

num::SideEncoding FP8Attr::toNumerics() const {
  return num::SideEncoding::fp8Format(getFormat() == FP8Format::E4M3
                                    ? num::FP8Format::E4M3
                                    : num::FP8Format::E5M2);
}

//===----------------------------------------------------------------------===//
// Reductions and eviction
//===----------------------------------------------------------------------===//

LogicalResult PruneAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                unsigned keep) {
  if (keep == 0)
    return emitError() << "prune must keep at least one channel";
  return success();
}

LogicalResult LowRankAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                  unsigned rank) {
  if (rank == 0)
    return emitError() << "low-rank projection needs a rank of at least 1";
  return success();
}

static num::EvictPolicy toNumericsEvictPolicy(EvictPolicy policy,
                                              unsigned sink, unsigned window,
                                              unsigned budget,
                                              DenseI64ArrayAttr headBudgets) {
  num::EvictPolicy p;
  p.kind = static_cast<num::EvictKind>(static_cast<uint32_t>(policy));
  p.sink = sink;
  p.window = window;
  p.budget = budget;
  if (headBudgets)
    for (int64_t headBudget : headBudgets.asArrayRef())
      p.headBudgets.push_back(size_t(headBudget));
  return p;
}

num::EvictPolicy EvictAttr::toNumerics() const {
  return toNumericsEvictPolicy(getPolicy(), getSink(), getWindow(),
                               getBudget(), getHeadBudgets());
}

std::optional<num::CacheEncoding> EvictAttr::getDemoteNumerics() const {
  if (!getDemoteKey() || !getDemoteValue())
    return std::nullopt;
  num::CacheEncoding encoding;
  encoding.key = getDemoteKey().toNumerics();
  encoding.value = getDemoteValue().toNumerics();
  encoding.residual = 0;
  return encoding;
}

// The numerics library owns the rule; the attribute reports it.
LogicalResult EvictAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                EvictPolicy policy, unsigned sink,
                                unsigned window, unsigned budget,
                                DenseI64ArrayAttr headBudgets,
                                SideEncodingAttrInterface demoteKey,
                                SideEncodingAttrInterface demoteValue) {
  if (bool(demoteKey) != bool(demoteValue))
    return emitError() << "demote_key and demote_value go together (two-tier "
                          "eviction keeps both sides of an evicted token)";
  for (auto [side, name] : {std::pair(demoteKey, "demote_key"),
                            std::pair(demoteValue, "demote_value")}) {
    if (!side)
      continue;
    std::string problem = num::checkDemoteEncoding(side.toNumerics());
    if (!problem.empty())
      return emitError() << name << ": " << problem;
  }
  if (headBudgets) {
    if (headBudgets.empty())
      return emitError() << "head_budgets must name one budget per KV head";
    for (auto [head, headBudget] : llvm::enumerate(headBudgets.asArrayRef()))
      if (headBudget < 0 || headBudget > int64_t(UINT32_MAX))
        return emitError() << "head_budgets entry " << head << " ("
                           << headBudget << ") is not a token count";
  }
  std::string problem = num::checkEvictPolicy(
      toNumericsEvictPolicy(policy, sink, window, budget, headBudgets));
  if (!problem.empty())
    return emitError() << problem;
  return success();
}

//===----------------------------------------------------------------------===//
// EncodingAttr
//===----------------------------------------------------------------------===//

/// Channel-axis groups run along tokens, so they can only be formed from
/// whole residual blocks.
static LogicalResult
verifyResidualForSide(SideEncodingAttrInterface side, StringRef name,
                      unsigned residual,
                      function_ref<InFlightDiagnostic()> emitError) {
  auto quant = dyn_cast<QuantAttr>(side);
  if (!quant || quant.getAxis() != QuantAxis::Channel)
    return success();
  if (residual == 0 || residual % quant.getGroup() != 0)
    return emitError() << "residual " << residual
                       << " must be a positive multiple of the " << name
                       << " group " << quant.getGroup()
                       << " (channel-axis groups run along tokens)";
  return success();
}

LogicalResult
EncodingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                     SideEncodingAttrInterface key,
                     SideEncodingAttrInterface value, unsigned residual,
                     Attribute keyReduce, Attribute valueReduce,
                     Attribute evict) {
  if (!key || !value)
    return emitError() << "encoding needs both a key and a value encoding";
  if (failed(verifyResidualForSide(key, "key", residual, emitError)) ||
      failed(verifyResidualForSide(value, "value", residual, emitError)))
    return failure();
  if (keyReduce && !isa<PruneAttr, LowRankAttr>(keyReduce))
    return emitError() << "key_reduce must be #kvc.prune or #kvc.lowrank";
  if (valueReduce && !isa<LowRankAttr>(valueReduce))
    return emitError() << "value_reduce must be #kvc.lowrank: value channels "
                          "cannot be pruned";
  if (evict && !isa<EvictAttr>(evict))
    return emitError() << "evict must be a #kvc.evict policy";
  return success();
}

/// The number of channels a side stores once its reduction is applied.
static int64_t reducedDim(Attribute reduce, int64_t headDim) {
  if (auto prune = dyn_cast_if_present<PruneAttr>(reduce))
    return prune.getKeep();
  if (auto lowRank = dyn_cast_if_present<LowRankAttr>(reduce))
    return lowRank.getRank();
  return headDim;
}

static LogicalResult
verifyReduction(Attribute reduce, StringRef side, int64_t headDim,
                function_ref<InFlightDiagnostic()> emitError) {
  int64_t reduced = reducedDim(reduce, headDim);
  if (reduce && reduced >= headDim)
    return emitError() << side << " reduction must keep fewer than head_dim ("
                       << headDim << ") dimensions, got " << reduced;
  return success();
}

LogicalResult EncodingAttr::verifyForHeadDim(
    int64_t headDim, function_ref<InFlightDiagnostic()> emitError) const {
  if (failed(verifyReduction(getKeyReduce(), "key", headDim, emitError)) ||
      failed(verifyReduction(getValueReduce(), "value", headDim, emitError)))
    return failure();
  // A reduced side is quantized in its reduced dimension.
  if (failed(getKey().verifyForHeadDim(reducedDim(getKeyReduce(), headDim),
                                       "key", emitError)) ||
      failed(getValue().verifyForHeadDim(
          reducedDim(getValueReduce(), headDim), "value", emitError)))
    return failure();
  return success();
}

num::CacheEncoding EncodingAttr::toNumerics() const {
  num::CacheEncoding encoding;
  encoding.key = getKey().toNumerics();
  encoding.value = getValue().toNumerics();
  encoding.residual = getResidual();
  return encoding;
}
