//===- KVCOps.cpp - kvc operations ----------------------------------------===//

#include "kvc/Dialect/KVC/IR/KVCOps.h"
#include "kvc/Dialect/KVC/IR/PackedShapes.h"
#include "kvc/Numerics/Evict.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

#include <cmath>

using namespace mlir;
using namespace mlir::kvc;

//===----------------------------------------------------------------------===//
// Custom assembly directives
//===----------------------------------------------------------------------===//

/// Parses a compressing side encoding as `quant<...>` or `fp8<...>`. The
/// full `#kvc.quant<...>` form cannot be used here: a dialect attribute takes
/// the `: type` that follows it in the op's syntax as its own type.
static ParseResult parseSideEncoding(OpAsmParser &parser,
                                     SideEncodingAttrInterface &result) {
  SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  if (parser.parseKeyword(&keyword))
    return failure();
  Attribute attr;
  if (keyword == QuantAttr::getMnemonic())
    attr = QuantAttr::parse(parser, Type());
  else if (keyword == FP8Attr::getMnemonic())
    attr = FP8Attr::parse(parser, Type());
  else
    return parser.emitError(loc, "expected 'quant<...>' or 'fp8<...>', got '")
           << keyword << "'";
  if (!attr)
    return failure();
  result = cast<SideEncodingAttrInterface>(attr);
  return success();
}

static void printSideEncoding(OpAsmPrinter &printer, Operation *,
                              SideEncodingAttrInterface encoding) {
  if (auto quant = dyn_cast<QuantAttr>(encoding)) {
    printer << QuantAttr::getMnemonic();
    printer.printStrippedAttrOrType(quant);
    return;
  }
  printer << FP8Attr::getMnemonic();
  printer.printStrippedAttrOrType(cast<FP8Attr>(encoding));
}

#define GET_OP_CLASSES
#include "kvc/Dialect/KVC/IR/KVCOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// Two dims agree unless both are static and differ.
static bool dimsAgree(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

static std::string dimToString(int64_t dim) {
  return ShapedType::isDynamic(dim) ? "?" : std::to_string(dim);
}

static std::string shapeToString(ArrayRef<int64_t> shape) {
  std::string result;
  for (int64_t dim : shape)
    result += (result.empty() ? "" : "x") + dimToString(dim);
  return result;
}

/// A cache value is consumed by one update (linear use): a second update in
/// the same block would silently alias the runtime pages. Sharing a prefix
/// must go through kvc.fork. Updates in different blocks (e.g. the two
/// branches of an scf.if) are left to the lowering.
static LogicalResult verifySingleUpdate(Operation *op, Value cache) {
  for (Operation *user : cache.getUsers()) {
    if (user == op || user->getBlock() != op->getBlock() ||
        !isa<AppendOp, EvictOp>(user) || !user->isBeforeInBlock(op))
      continue;
    return op->emitOpError("updates a cache value that '")
           << user->getName()
           << "' already updated; a cache is consumed by one update (use "
              "kvc.fork to update a shared prefix twice)";
  }
  return success();
}

/// Checks a BHSD tensor (keys, values or queries) against the cache.
static LogicalResult verifyAgainstCache(Operation *op, StringRef name,
                                        RankedTensorType type, CacheType cache,
                                        bool headsMustMatch) {
  if (type.getRank() != 4)
    return op->emitOpError() << name
                             << " must be batch x heads x tokens x head_dim "
                                "(rank 4), got rank "
                             << type.getRank();
  ArrayRef<int64_t> shape = type.getShape();
  if (!dimsAgree(shape[0], cache.getBatch()))
    return op->emitOpError() << name << " batch " << dimToString(shape[0])
                             << " does not match the cache batch "
                             << dimToString(cache.getBatch());
  if (ShapedType::isDynamic(shape[1]) || ShapedType::isDynamic(shape[3]))
    return op->emitOpError() << name << " heads and head_dim must be static";
  if (shape[3] != cache.getHeadDim())
    return op->emitOpError() << name << " head_dim " << shape[3]
                             << " does not match the cache head_dim "
                             << cache.getHeadDim();
  if (headsMustMatch && shape[1] != cache.getNumKVHeads())
    return op->emitOpError() << name << " have " << shape[1]
                             << " heads but the cache has "
                             << cache.getNumKVHeads() << " KV heads";
  return success();
}

//===----------------------------------------------------------------------===//
// CacheEmptyOp
//===----------------------------------------------------------------------===//

LogicalResult CacheEmptyOp::verify() {
  unsigned expected = getResult().getType().hasDynamicBatch() ? 1 : 0;
  if (getDynamicSizes().size() != expected)
    return emitOpError("expects ")
           << expected << " dynamic size operand"
           << (expected == 1 ? " (for the dynamic batch)" : "")
           << ", got " << getDynamicSizes().size();
  return success();
}

//===----------------------------------------------------------------------===//
// ForkOp
//===----------------------------------------------------------------------===//

namespace {
/// A fork with one unused result needs no sharing: the used result is the
/// operand itself.
struct ForwardSingleUseFork : public OpRewritePattern<ForkOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ForkOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.getFirst().use_empty() && !op.getSecond().use_empty())
      return rewriter.notifyMatchFailure(op, "both results are used");
    rewriter.replaceOp(op, {op.getCache(), op.getCache()});
    return success();
  }
};
} // namespace

void ForkOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                         MLIRContext *context) {
  results.add<ForwardSingleUseFork>(context);
}

//===----------------------------------------------------------------------===//
// AppendOp
//===----------------------------------------------------------------------===//

LogicalResult AppendOp::verify() {
  CacheType cache = getCache().getType();
  auto keys = getKeys().getType(), values = getValues().getType();
  if (failed(verifyAgainstCache(*this, "keys", keys, cache, true)) ||
      failed(verifyAgainstCache(*this, "values", values, cache, true)))
    return failure();
  if (failed(verifyCompatibleShape(keys.getShape(), values.getShape())))
    return emitOpError("keys and values must have the same shape, got ")
           << keys << " and " << values;
  int64_t newTokens = keys.getDimSize(2), capacity = cache.getCapacity();
  if (!ShapedType::isDynamic(newTokens) && !ShapedType::isDynamic(capacity) &&
      newTokens > capacity)
    return emitOpError("appends ")
           << newTokens << " tokens to a cache of capacity " << capacity;
  return verifySingleUpdate(*this, getCache());
}

OpFoldResult AppendOp::fold(FoldAdaptor) {
  // Appending no tokens leaves the cache as it is.
  if (getKeys().getType().getDimSize(2) == 0)
    return getCache();
  return {};
}

//===----------------------------------------------------------------------===//
// AttendOp
//===----------------------------------------------------------------------===//

LogicalResult AttendOp::verify() {
  CacheType cache = getCache().getType();
  RankedTensorType query = getQuery().getType();
  if (failed(verifyAgainstCache(*this, "query", query, cache, false)))
    return failure();
  int64_t queryHeads = query.getDimSize(1);
  if (queryHeads % cache.getNumKVHeads() != 0)
    return emitOpError("query heads (")
           << queryHeads << ") must be a multiple of the cache's KV heads ("
           << cache.getNumKVHeads() << ") for grouped-query attention";
  int64_t queryLen = query.getDimSize(2);
  if (queryLen == 0)
    return emitOpError("q_len must be at least 1");
  if (!ShapedType::isDynamic(queryLen) &&
      !ShapedType::isDynamic(cache.getCapacity()) &&
      queryLen > cache.getCapacity())
    return emitOpError("q_len ")
           << queryLen << " exceeds the cache capacity "
           << cache.getCapacity();
  if (getResult().getType().getShape() != query.getShape())
    return emitOpError("result shape must equal the query shape ")
           << query;
  if (auto scale = getScaleAttr()) {
    double value = scale.getValueAsDouble();
    if (!(value > 0.0) || !std::isfinite(value))
      return emitOpError("scale must be positive and finite, got ") << value;
  }
  if (auto softcap = getSoftcapAttr()) {
    double value = softcap.getValueAsDouble();
    if (!(value > 0.0) || !std::isfinite(value))
      return emitOpError("softcap must be positive and finite, got ")
             << value;
  }
  if (auto window = getWindow(); window && *window < 1)
    return emitOpError("window must be at least 1 token, got ") << *window;
  if (Value mask = getMask()) {
    ArrayRef<int64_t> shape = cast<RankedTensorType>(mask.getType()).getShape();
    if (shape.size() != 4 || !dimsAgree(shape[0], query.getDimSize(0)) ||
        !(shape[1] == 1 || dimsAgree(shape[1], queryHeads)) ||
        !dimsAgree(shape[2], queryLen))
      return emitOpError("mask must be batch x (1 | q_heads) x q_len x "
                         "tokens, got ")
             << mask.getType();
  }
  if (Value mass = getMass()) {
    auto type = cast<RankedTensorType>(mass.getType());
    if (type.getRank() != 3 || !dimsAgree(type.getDimSize(0), query.getDimSize(0)) ||
        type.getDimSize(1) != cache.getNumKVHeads() ||
        !ShapedType::isDynamic(type.getDimSize(2)))
      return emitOpError("mass must be batch x kv_heads x ? (")
             << dimToString(query.getDimSize(0)) << "x"
             << cache.getNumKVHeads() << "x?xf32: its token dimension is "
             << "the longest sequence's length, known at run time), got "
             << type;
  }
  return success();
}

double AttendOp::getEffectiveScale() {
  if (auto scale = getScaleAttr())
    return scale.getValueAsDouble();
  return 1.0 / std::sqrt(double(getCache().getType().getHeadDim()));
}

//===----------------------------------------------------------------------===//
// EvictOp
//===----------------------------------------------------------------------===//

LogicalResult EvictOp::verify() {
  CacheType cache = getCache().getType();
  bool scoreBased = getPolicy().getPolicy() != EvictPolicy::Streaming;
  if (scoreBased && !getScores())
    return emitOpError("policy '")
           << stringifyEvictPolicy(getPolicy().getPolicy())
           << "' ranks tokens by score and needs a scores operand";
  if (!scoreBased && getScores())
    return emitOpError("streaming eviction keeps the sink and the window and "
                       "takes no scores");
  if (auto scores = getScores()) {
    auto type = cast<RankedTensorType>(scores.getType());
    if (type.getRank() != 3 || !dimsAgree(type.getDimSize(0), cache.getBatch()) ||
        !dimsAgree(type.getDimSize(1), cache.getNumKVHeads()))
      return emitOpError("scores must be batch x kv_heads x tokens (")
             << dimToString(cache.getBatch()) << "x" << cache.getNumKVHeads()
             << "x?), got " << type;
  }
  std::string problem = ::kvc::numerics::checkEvictPolicyHeads(
      getPolicy().toNumerics(), size_t(cache.getNumKVHeads()));
  if (!problem.empty())
    return emitOpError(problem);
  // Attention reads demoted tokens only if the cache's encoding says they
  // exist, so both must agree on whether and how evicted tokens are kept.
  if (EncodingAttr encoding = cache.getEncoding())
    if (EvictAttr declared = encoding.getEvictPolicy())
      if (declared.getDemoteKey() != getPolicy().getDemoteKey() ||
          declared.getDemoteValue() != getPolicy().getDemoteValue())
        return emitOpError("keeps evicted tokens differently (demote_key / "
                           "demote_value) from the eviction its cache's "
                           "encoding declares");
  return verifySingleUpdate(*this, getCache());
}

//===----------------------------------------------------------------------===//
// QuantizeOp / DequantizeOp
//===----------------------------------------------------------------------===//

/// Checks the packed tensors against the shapes the layout implies for
/// `unpacked` (docs/layout.md).
static LogicalResult verifyPacked(Operation *op, SideEncodingAttrInterface enc,
                                  RankedTensorType unpacked, Type codes,
                                  Type scales, Type zeros) {
  FailureOr<PackedShapes> expected = computePackedShapes(
      enc, unpacked.getShape(),
      [&]() { return op->emitOpError(); });
  if (failed(expected))
    return failure();
  auto check = [&](StringRef name, Type actual,
                   ArrayRef<int64_t> shape) -> LogicalResult {
    auto type = cast<RankedTensorType>(actual);
    if (failed(verifyCompatibleShape(type.getShape(), shape)))
      return op->emitOpError()
             << name << " must have shape " << shapeToString(shape)
             << " for this encoding (docs/layout.md), got " << type;
    return success();
  };
  if (failed(check("codes", codes, expected->codes)) ||
      failed(check("scales", scales, expected->scales)))
    return failure();
  if (expected->zeros.has_value() != bool(zeros))
    return op->emitOpError()
           << (zeros ? "fp8 encodings have no zero points"
                     : "integer quantization needs zero points");
  if (zeros && failed(check("zeros", zeros, *expected->zeros)))
    return failure();
  return success();
}

LogicalResult QuantizeOp::verify() {
  return verifyPacked(*this, getEncoding(), getInput().getType(),
                      getCodes().getType(), getScales().getType(),
                      getZeros() ? getZeros().getType() : Type());
}

LogicalResult DequantizeOp::verify() {
  return verifyPacked(*this, getEncoding(), getResult().getType(),
                      getCodes().getType(), getScales().getType(),
                      getZeros() ? getZeros().getType() : Type());
}

//===----------------------------------------------------------------------===//
// Per-head encodings
//===----------------------------------------------------------------------===//

SmallVector<EncodingAttr> mlir::kvc::getKVHeadEncodings(Value cache) {
  auto type = cast<CacheType>(cache.getType());
  EncodingAttr encoding = type.getEncoding();
  if (!encoding)
    return {};
  StringRef name = KVCDialect::getHeadEncodingsAttrName();
  ArrayAttr heads;
  // Walk back to where the cache was introduced: updates keep the encodings.
  for (Value value = cache; value && !heads;) {
    if (auto arg = dyn_cast<BlockArgument>(value)) {
      Operation *parent = arg.getOwner()->getParentOp();
      if (auto function = dyn_cast_or_null<FunctionOpInterface>(parent))
        if (arg.getOwner()->isEntryBlock())
          heads = function.getArgAttrOfType<ArrayAttr>(arg.getArgNumber(),
                                                       name);
      break;
    }
    Operation *op = value.getDefiningOp();
    if ((heads = op->getAttrOfType<ArrayAttr>(name)))
      break;
    if (auto append = dyn_cast<AppendOp>(op))
      value = append.getCache();
    else if (auto fork = dyn_cast<ForkOp>(op))
      value = fork.getCache();
    else if (auto evict = dyn_cast<EvictOp>(op))
      value = evict.getCache();
    else
      break;
  }
  // The verifier checked the array against the type.
  if (heads)
    return llvm::map_to_vector(heads, [](Attribute attr) {
      return cast<EncodingAttr>(attr);
    });
  return SmallVector<EncodingAttr>(std::max<int64_t>(type.getNumKVHeads(), 0),
                                   encoding);
}
