//===- KVCToLoops.cpp - the CPU lowering of kvc ---------------------------===//
//
// Caches become pointers to runtime bindings, appends become runtime calls
// that update pages in place, and attention becomes loops over the packed
// pages (AttendToLoops.cpp). Function signatures follow the type change.
//
//===----------------------------------------------------------------------===//

#include "Lowering.h"
#include "RuntimeABI.h"

#include "kvc/Conversion/Passes.h"
#include "kvc/Numerics/FP8.h"
#include "kvc/Numerics/Layout.h"
#include "mlir/Dialect/Func/Transforms/FuncConversions.h"
#include "mlir/Dialect/SCF/Transforms/Patterns.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir {
namespace kvc {
#define GEN_PASS_DEF_KVCLOWERTOLOOPS
#include "kvc/Conversion/Passes.h.inc"
} // namespace kvc
} // namespace mlir

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

static std::string fp8TableName(num::FP8Format format) {
  return std::string("kvc_fp8_") + num::fp8FormatName(format) + "_table";
}

func::FuncOp LoweringContext::getOrDeclare(OpBuilder &b, StringRef name,
                                           TypeRange inputs, TypeRange results,
                                           bool cInterface) const {
  if (auto existing = module.lookupSymbol<func::FuncOp>(name))
    return existing;
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(module.getBody());
  auto func = func::FuncOp::create(b, module.getLoc(), name,
                                   b.getFunctionType(inputs, results));
  func.setPrivate();
  if (cInterface)
    func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                  b.getUnitAttr());
  return func;
}

Value LoweringContext::call(OpBuilder &b, Location loc, StringRef name,
                            TypeRange results, ValueRange args) const {
  func::FuncOp callee =
      getOrDeclare(b, name, args.getTypes(), results, /*cInterface=*/false);
  auto op = func::CallOp::create(b, loc, callee, args);
  return results.empty() ? Value() : op.getResult(0);
}

Value LoweringContext::getFP8Table(OpBuilder &b, Location loc,
                                   const num::SideEncoding &side) const {
  return getOrCreateFP8Table(b, loc, module, side);
}

Value mlir::kvc::emitLayoutCheck(OpBuilder &b, Location loc,
                                 const LoweringContext &ctx,
                                 StringRef checkLayoutFn, Value binding,
                                 const CachePageLayout &pages,
                                 unsigned residual, int64_t kvHeads,
                                 int64_t headDim) {
  auto i64Const = [&](int64_t v) -> Value {
    return arith::ConstantIntOp::create(b, loc, v, 64);
  };
  auto nonZero = [&](Value v) -> Value {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, v,
                                 arith::ConstantIntOp::create(b, loc, 0, 32));
  };
  Value ok = nonZero(
      ctx.call(b, loc, checkLayoutFn, b.getI32Type(),
               {binding, i64Const(ctx.pageTokens), i64Const(pages.kPageBytes),
                i64Const(pages.vPageBytes), i64Const(residual),
                i64Const(kvHeads), i64Const(headDim)}));
  for (auto [head, layout] : llvm::enumerate(pages.heads))
    ok = arith::AndIOp::create(
        b, loc, ok,
        nonZero(
            ctx.call(b, loc, abi::kCheckHead, b.getI32Type(),
                     {binding, i64Const(head),
                      i64Const(abi::packSideEncoding(layout.encoding.key)),
                      i64Const(abi::packSideEncoding(layout.encoding.value)),
                      i64Const(layout.kOffset), i64Const(layout.vOffset)})));
  return ok;
}

CachePageLayout::CachePageLayout(ArrayRef<num::CacheEncoding> encodings,
                                 unsigned headDim, unsigned pageTokens) {
  for (const num::CacheEncoding &encoding : encodings) {
    HeadPageLayout head;
    head.encoding = encoding;
    head.k = num::computeBlockLayout(encoding.key, headDim, pageTokens);
    head.v = num::computeBlockLayout(encoding.value, headDim, pageTokens);
    head.kOffset = kPageBytes;
    head.vOffset = vPageBytes;
    kPageBytes += head.k.blockBytes;
    vPageBytes += head.v.blockBytes;
    heads.push_back(head);
  }
}

Value mlir::kvc::roundToHalf(OpBuilder &b, Location loc, Value x) {
  Value half = arith::TruncFOp::create(b, loc, b.getF16Type(), x);
  return arith::ExtFOp::create(b, loc, b.getF32Type(), half);
}

Value mlir::kvc::getOrCreateFP8Table(OpBuilder &b, Location loc,
                                    Operation *symbolTable,
                                    const num::SideEncoding &side) {
  if (!side.isFP8())
    return Value();
  std::string name = fp8TableName(side.fp8);
  auto type = MemRefType::get({256}, b.getF32Type());
  if (!SymbolTable::lookupSymbolIn(symbolTable, name)) {
    SmallVector<float> values;
    for (unsigned code = 0; code < 256; ++code)
      values.push_back(num::fp8ToFloat(code, side.fp8));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&symbolTable->getRegion(0).front());
    memref::GlobalOp::create(
        b, symbolTable->getLoc(), name, b.getStringAttr("private"), type,
        DenseElementsAttr::get(RankedTensorType::get({256}, b.getF32Type()),
                               ArrayRef<float>(values)),
        /*constant=*/true, /*alignment=*/IntegerAttr());
  }
  return memref::GetGlobalOp::create(b, loc, type, name);
}

/// A memref type of f32 with dynamic sizes, strides and offset: what the
/// runtime's C-interface entry points take, whatever the caller's layout.
static MemRefType getStridedF32Type(MLIRContext *context, unsigned rank) {
  return MemRefType::get(
      SmallVector<int64_t>(rank, ShapedType::kDynamic),
      Float32Type::get(context),
      StridedLayoutAttr::get(context, ShapedType::kDynamic,
                             SmallVector<int64_t>(rank, ShapedType::kDynamic)));
}

/// The f32 tensor `tensor` as a read-only buffer of getStridedF32Type.
static Value toStridedF32Buffer(OpBuilder &b, Location loc, Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  Value buffer = bufferization::ToBufferOp::create(
      b, loc, MemRefType::get(type.getShape(), type.getElementType()), tensor,
      /*read_only=*/true);
  return memref::CastOp::create(
      b, loc, getStridedF32Type(b.getContext(), type.getRank()), buffer);
}

namespace {

/// kvc.append -> a runtime call on the binding, which it updates in place.
struct AppendToCall : public OpConversionPattern<AppendOp> {
  AppendToCall(const TypeConverter &converter, MLIRContext *context,
               const LoweringContext &lowering)
      : OpConversionPattern(converter, context), lowering(lowering) {}

  LogicalResult
  matchAndRewrite(AppendOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MemRefType stridedType = getStridedF32Type(rewriter.getContext(), 4);
    auto toF32Buffer = [&](Value tensor) -> Value {
      auto type = cast<RankedTensorType>(tensor.getType());
      // The runtime takes f32 tokens and rounds them to fp16 itself.
      if (!type.getElementType().isF32())
        tensor = arith::ExtFOp::create(
            rewriter, loc, type.clone(rewriter.getF32Type()), tensor);
      return toStridedF32Buffer(rewriter, loc, tensor);
    };
    Value keys = toF32Buffer(op.getKeys());
    Value values = toF32Buffer(op.getValues());
    Value binding = adaptor.getCache();
    func::FuncOp callee = lowering.getOrDeclare(
        rewriter, abi::kAppend,
        {binding.getType(), stridedType, stridedType}, {}, true);
    func::CallOp::create(rewriter, loc, callee,
                         ValueRange{binding, keys, values});
    rewriter.replaceOp(op, binding);
    return success();
  }

private:
  const LoweringContext &lowering;
};

/// kvc.evict -> a runtime call that applies the policy to every sequence of
/// the binding in place: evicted tokens' live bits are cleared and pages
/// with no live token left go back to the pool.
struct EvictToCall : public OpConversionPattern<EvictOp> {
  EvictToCall(const TypeConverter &converter, MLIRContext *context,
              const LoweringContext &lowering)
      : OpConversionPattern(converter, context), lowering(lowering) {}

  LogicalResult
  matchAndRewrite(EvictOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MemRefType stridedType = getStridedF32Type(rewriter.getContext(), 3);
    Value scores;
    if (Value tensor = op.getScores()) {
      scores = toStridedF32Buffer(rewriter, loc, tensor);
    } else {
      // Streaming ranks nothing; the runtime takes an empty scores memref.
      Value empty = memref::AllocaOp::create(
          rewriter, loc, MemRefType::get({0, 0, 0}, rewriter.getF32Type()));
      scores = memref::CastOp::create(rewriter, loc, stridedType, empty);
    }
    num::EvictPolicy policy = op.getPolicy().toNumerics();
    auto i64 = [&](int64_t value) -> Value {
      return arith::ConstantIntOp::create(rewriter, loc, value, 64);
    };
    Value binding = adaptor.getCache();
    Type i64Type = rewriter.getI64Type();
    SmallVector<Value> args = {binding, scores, i64(int64_t(policy.kind)),
                               i64(int64_t(policy.sink)),
                               i64(int64_t(policy.window))};
    SmallVector<Type> argTypes = {binding.getType(), stridedType, i64Type,
                                  i64Type, i64Type};
    StringRef entry = abi::kEvict;
    std::optional<num::CacheEncoding> demote =
        op.getPolicy().getDemoteNumerics();
    // Two-tier eviction passes per-head budgets (all equal without
    // head_budgets) and the demotion encodings.
    if (demote && policy.headBudgets.empty())
      policy.headBudgets.assign(size_t(op.getCache().getType().getNumKVHeads()),
                                policy.budget);
    if (policy.headBudgets.empty()) {
      args.push_back(i64(int64_t(policy.budget)));
      argTypes.push_back(i64Type);
    } else {
      // One budget per KV head, in a small stack buffer.
      int64_t heads = int64_t(policy.headBudgets.size());
      Value budgets = memref::AllocaOp::create(
          rewriter, loc, MemRefType::get({heads}, i64Type));
      for (auto [head, budget] : llvm::enumerate(policy.headBudgets))
        memref::StoreOp::create(
            rewriter, loc, i64(int64_t(budget)), budgets,
            ValueRange{arith::ConstantIndexOp::create(rewriter, loc, head)});
      auto dynamicType = MemRefType::get({ShapedType::kDynamic}, i64Type);
      args.push_back(
          memref::CastOp::create(rewriter, loc, dynamicType, budgets));
      argTypes.push_back(dynamicType);
      entry = abi::kEvictHeads;
    }
    if (demote) {
      for (const num::SideEncoding &side : {demote->key, demote->value}) {
        args.push_back(i64(abi::packSideEncoding(side)));
        argTypes.push_back(i64Type);
      }
      entry = abi::kEvictDemote;
    }
    func::FuncOp callee =
        lowering.getOrDeclare(rewriter, entry, argTypes, {}, true);
    func::CallOp::create(rewriter, loc, callee, args);
    rewriter.replaceOp(op, binding);
    return success();
  }

private:
  const LoweringContext &lowering;
};

struct KVCLowerToLoopsPass
    : public mlir::kvc::impl::KVCLowerToLoopsBase<KVCLowerToLoopsPass> {
  using Base::Base;
  void runOnOperation() override;
};

} // namespace

FailureOr<SmallVector<num::CacheEncoding>>
mlir::kvc::getLowerableHeadEncodings(Operation *op, TypedValue<CacheType> cache,
                                     unsigned pageTokens, StringRef passName,
                                     bool allowEviction) {
  CacheType type = cache.getType();
  EncodingAttr encoding = type.getEncoding();
  if (!encoding)
    return SmallVector<num::CacheEncoding>(type.getNumKVHeads(),
                                           num::CacheEncoding());
  if (encoding.getKeyReduce() || encoding.getValueReduce())
    return op->emitOpError()
           << passName << ": key/value reductions are not lowered yet";
  if (encoding.getEvict() && !allowEviction)
    return op->emitOpError()
           << passName
           << ": attention over a cache with eviction (#kvc.evict) is not "
              "lowered yet; kvc-lower-to-loops lowers it on the CPU";
  SmallVector<num::CacheEncoding> heads;
  unsigned headDim = type.getHeadDim();
  if (EvictAttr evict = encoding.getEvictPolicy())
    if (std::optional<num::CacheEncoding> demote = evict.getDemoteNumerics())
      for (auto [side, name] : {std::pair(&demote->key, "demote_key"),
                                std::pair(&demote->value, "demote_value")}) {
        std::string problem =
            num::validatePageConfig(*side, headDim, pageTokens);
        if (!problem.empty())
          return op->emitOpError() << passName << ": two-tier eviction " << name
                                   << ": " << problem;
      }
  for (auto [head, headEncoding] : llvm::enumerate(getKVHeadEncodings(cache))) {
    if (headEncoding.getKeyReduce() || headEncoding.getValueReduce())
      return op->emitOpError() << passName << ": KV head " << head
                               << ": key/value reductions are not lowered yet";
    num::CacheEncoding numerics = headEncoding.toNumerics();
    for (const num::SideEncoding *side : {&numerics.key, &numerics.value}) {
      std::string problem = num::validatePageConfig(*side, headDim, pageTokens);
      if (!problem.empty()) {
        InFlightDiagnostic diag = op->emitOpError() << passName << ": ";
        if (headEncoding != encoding)
          diag << "KV head " << head << ": ";
        return diag << problem;
      }
    }
    heads.push_back(numerics);
  }
  return heads;
}

/// The CPU path updates caches in place, so a cache value that an append
/// consumed must not be read afterwards; and the ops it cannot lower yet
/// are an error here rather than a silent fallback. Records the encoding of
/// every KV head of each attention's cache in `lowering`.
static LogicalResult checkLowerable(ModuleOp module, LoweringContext &lowering,
                                    bool generatedAppend) {
  WalkResult result = module.walk([&](Operation *op) -> WalkResult {
    if (auto append = dyn_cast<AppendOp>(op); append && generatedAppend) {
      FailureOr<SmallVector<num::CacheEncoding>> heads =
          getLowerableHeadEncodings(append, append.getCache(),
                                    lowering.pageTokens, "kvc-lower-to-loops",
                                    /*allowEviction=*/true);
      if (failed(heads))
        return WalkResult::interrupt();
      lowering.headEncodings[op] = std::move(*heads);
    }
    if (isa<ForkOp, CacheEmptyOp, DequantizeOp>(op)) {
      op->emitOpError("is not lowered by kvc-lower-to-loops yet");
      return WalkResult::interrupt();
    }
    if (auto quantize = dyn_cast<QuantizeOp>(op)) {
      if (!cast<RankedTensorType>(quantize.getInput().getType())
               .hasStaticShape()) {
        quantize.emitOpError(
            "kvc-lower-to-loops: the input must have a static shape");
        return WalkResult::interrupt();
      }
    }
    if (auto evict = dyn_cast<EvictOp>(op)) {
      // Attention checks live tokens only on caches that declare eviction,
      // so that caches without it pay nothing.
      EncodingAttr encoding = evict.getCache().getType().getEncoding();
      if (!encoding || !encoding.getEvict()) {
        evict.emitOpError(
            "kvc-lower-to-loops: the cache's encoding declares no eviction "
            "(evict = #kvc.evict<...>), so attention over it would not skip "
            "evicted tokens");
        return WalkResult::interrupt();
      }
    }
    if (auto attend = dyn_cast<AttendOp>(op)) {
      int64_t headDim = attend.getCache().getType().getHeadDim();
      if (lowering.keyReadsInParts && headDim % 16 != 0) {
        attend.emitOpError("kvc-lower-to-loops: key-reads=parts reads keys "
                           "in 16-channel parts; head_dim ")
            << headDim << " is not a multiple of 16";
        return WalkResult::interrupt();
      }
      FailureOr<SmallVector<num::CacheEncoding>> heads =
          getLowerableHeadEncodings(attend, attend.getCache(),
                                    lowering.pageTokens, "kvc-lower-to-loops",
                                    /*allowEviction=*/true);
      if (failed(heads))
        return WalkResult::interrupt();
      lowering.headEncodings[op] = std::move(*heads);
    }
    if (isa<AppendOp, EvictOp>(op) &&
        failed(checkNotReadAfterUpdate(op, "the CPU lowering")))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

void KVCLowerToLoopsPass::runOnOperation() {
  ModuleOp module = getOperation();
  MLIRContext *context = &getContext();
  LoweringContext lowering{
      pageTokens, decltype(LoweringContext::headEncodings)(), module};
  if (append != "runtime" && append != "generated") {
    emitError(module.getLoc())
        << "kvc-lower-to-loops: append must be `runtime` or "
           "`generated`, not `"
        << append << "`";
    return signalPassFailure();
  }
  const bool generatedAppend = append == "generated";
  if (keyReads != "rows" && keyReads != "parts") {
    emitError(module.getLoc())
        << "kvc-lower-to-loops: key-reads must be `rows` or "
           "`parts`, not `"
        << keyReads << "`";
    return signalPassFailure();
  }
  lowering.keyReadsInParts = keyReads == "parts";
  if (valueReads != "f32" && valueReads != "f16") {
    emitError(module.getLoc())
        << "kvc-lower-to-loops: value-reads must be `f32` or "
           "`f16`, not `"
        << valueReads << "`";
    return signalPassFailure();
  }
  lowering.valuesInHalf = valueReads == "f16";
  if (failed(checkLowerable(module, lowering, generatedAppend)))
    return signalPassFailure();

  TypeConverter converter;
  addCacheToBindingConversion(converter);
  RewritePatternSet patterns(context);
  patterns.add<EvictToCall>(converter, context, lowering);
  if (generatedAppend)
    populateAppendToLoopsPattern(patterns, converter, lowering);
  else
    patterns.add<AppendToCall>(converter, context, lowering);
  populateAttendToLoopsPattern(patterns, converter, lowering);
  populateQuantizeToLoopsPattern(patterns, converter);
  if (failed(applyBindingConversion(module, converter, std::move(patterns))))
    return signalPassFailure();
  removeHeadEncodings(module);
}

LogicalResult mlir::kvc::checkNotReadAfterUpdate(Operation *update,
                                                 StringRef passName) {
  Value cache = update->getOperand(0);
  for (Operation *user : cache.getUsers())
    if (user != update && user->getBlock() == update->getBlock() &&
        update->isBeforeInBlock(user))
      return user->emitOpError("reads a cache after '")
             << update->getName() << "' updated it; " << passName
             << " updates caches in place";
  return success();
}

void mlir::kvc::addCacheToBindingConversion(TypeConverter &converter) {
  converter.addConversion([](Type type) { return type; });
  converter.addConversion([](CacheType type) -> Type {
    return LLVM::LLVMPointerType::get(type.getContext());
  });
  auto materialize = [](OpBuilder &b, Type type, ValueRange inputs,
                        Location loc) -> Value {
    return UnrealizedConversionCastOp::create(b, loc, type, inputs)
        .getResult(0);
  };
  converter.addSourceMaterialization(materialize);
  converter.addTargetMaterialization(materialize);
}

LogicalResult
mlir::kvc::applyBindingConversion(ModuleOp module,
                                  const TypeConverter &converter,
                                  RewritePatternSet &&patterns) {
  MLIRContext *context = module.getContext();
  populateFunctionOpInterfaceTypeConversionPattern<func::FuncOp>(patterns,
                                                                 converter);
  populateReturnOpTypeConversionPattern(patterns, converter);
  populateCallOpTypeConversionPattern(patterns, converter);
  ConversionTarget target(*context);
  target.addIllegalDialect<KVCDialect>();
  target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
  target.addDynamicallyLegalOp<func::FuncOp>([&](func::FuncOp op) {
    return converter.isSignatureLegal(op.getFunctionType()) &&
           converter.isLegal(&op.getBody());
  });
  target.addDynamicallyLegalOp<func::ReturnOp, func::CallOp>(
      [&](Operation *op) { return converter.isLegal(op); });
  // Caches carried through scf.if/for/while become bindings there too.
  scf::populateSCFStructuralTypeConversionsAndLegality(converter, patterns,
                                                       target);
  return applyPartialConversion(module, target, std::move(patterns));
}

void mlir::kvc::removeHeadEncodings(ModuleOp module) {
  // The per-head encodings are now part of the generated code; the
  // attribute describes caches, which no longer exist.
  StringRef headEncodings = KVCDialect::getHeadEncodingsAttrName();
  module.walk([&](Operation *op) {
    op->removeAttr(headEncodings);
    if (auto func = dyn_cast<func::FuncOp>(op))
      for (unsigned i = 0; i < func.getNumArguments(); ++i)
        func.removeArgAttr(i, headEncodings);
  });
}
