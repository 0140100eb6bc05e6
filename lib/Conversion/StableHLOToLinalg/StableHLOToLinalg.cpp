//===- StableHLOToLinalg.cpp - the StableHLO frontend pass ----------------===//
//
// Checks every StableHLO op first (known op, known attributes, static tensor
// types of supported element types, well-formed attribute text) and reports
// each problem at its op; only a module without problems is converted.
// Then calls to private functions are inlined and a partial dialect
// conversion turns the `stablehlo` ops into linalg/tensor/arith/math/scf.
//
//===----------------------------------------------------------------------===//

#include "Patterns.h"

#include "kvc/Conversion/Passes.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/Dominance.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/CSE.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"

namespace mlir {
namespace kvc {
#define GEN_PASS_DEF_KVCSTABLEHLOTOLINALG
#include "kvc/Conversion/Passes.h.inc"
} // namespace kvc
} // namespace mlir

using namespace mlir;
using namespace mlir::kvc;
using namespace mlir::kvc::shlo;

//===----------------------------------------------------------------------===//
// Helpers shared by the patterns
//===----------------------------------------------------------------------===//

Value shlo::createEmpty(OpBuilder &builder, Location loc,
                        RankedTensorType type) {
  return tensor::EmptyOp::create(builder, loc, type.getShape(),
                                 type.getElementType());
}

Value shlo::createFilled(OpBuilder &builder, Location loc,
                         RankedTensorType type, Value value) {
  return linalg::FillOp::create(builder, loc, value,
                                createEmpty(builder, loc, type))
      .getResult(0);
}

Value shlo::buildElementwise(
    OpBuilder &builder, Location loc, RankedTensorType resultType,
    ValueRange inputs,
    function_ref<Value(OpBuilder &, Location, ValueRange)> body) {
  MLIRContext *context = builder.getContext();
  unsigned rank = resultType.getRank();
  SmallVector<AffineMap> maps;
  for (Value input : inputs)
    maps.push_back(tensorType(input).getRank() == 0 && rank != 0
                       ? AffineMap::get(rank, 0, {}, context)
                       : AffineMap::getMultiDimIdentityMap(rank, context));
  maps.push_back(AffineMap::getMultiDimIdentityMap(rank, context));
  auto generic = linalg::GenericOp::create(
      builder, loc, TypeRange{resultType}, inputs,
      createEmpty(builder, loc, resultType), maps,
      SmallVector<utils::IteratorType>(rank, utils::IteratorType::parallel),
      [&](OpBuilder &b, Location bodyLoc, ValueRange args) {
        Value result = body(b, bodyLoc, args.drop_back());
        linalg::YieldOp::create(b, bodyLoc, result);
      });
  return generic->getResult(0);
}

Value shlo::extractIndex(OpBuilder &builder, Location loc,
                         Value scalarTensor) {
  Value element = tensor::ExtractOp::create(builder, loc, scalarTensor,
                                            ValueRange{});
  Value wide = convertScalar(builder, loc, element, builder.getI64Type());
  return arith::IndexCastOp::create(builder, loc, builder.getIndexType(),
                                    wide);
}

Value shlo::clampIndex(OpBuilder &builder, Location loc, Value index,
                       int64_t upper) {
  Value zero = arith::ConstantIndexOp::create(builder, loc, 0);
  Value high = arith::ConstantIndexOp::create(builder, loc, upper);
  Value low = arith::MaxSIOp::create(builder, loc, index, zero);
  return arith::MinSIOp::create(builder, loc, low, high);
}

Value shlo::scalarOf(OpBuilder &builder, Location loc, Value tensor) {
  DenseElementsAttr constant;
  if (matchPattern(tensor, m_Constant(&constant)) && constant.isSplat())
    return arith::ConstantOp::create(
        builder, loc, cast<TypedAttr>(constant.getSplatValue<Attribute>()));
  SmallVector<Value> zeros(
      tensorType(tensor).getRank(),
      arith::ConstantIndexOp::create(builder, loc, 0));
  return tensor::ExtractOp::create(builder, loc, tensor, zeros);
}

FailureOr<Operation *> shlo::readCombiner(Operation *op, Region &body,
                                          bool allowOverwrite,
                                          bool emitErrors) {
  auto fail = [&](const Twine &why) -> FailureOr<Operation *> {
    if (emitErrors)
      op->emitError() << "unsupported body: " << why;
    return failure();
  };
  if (!body.hasOneBlock())
    return fail("expected one block");
  Block &block = body.front();
  Type element = tensorType(op->getOperand(0)).getElementType();
  auto scalarType = RankedTensorType::get({}, element);
  if (block.getNumArguments() != 2 ||
      llvm::any_of(block.getArgumentTypes(),
                   [&](Type type) { return type != scalarType; }))
    return fail(Twine("expected two ") +
                llvm::formatv("{0}", scalarType).str() + " arguments");
  if (block.empty())
    return fail("expected 'stablehlo.return' of one value");
  Operation *terminator = &block.back();
  if (terminator->getName().getStringRef() != "stablehlo.return" ||
      terminator->getNumOperands() != 1)
    return fail("expected 'stablehlo.return' of one value");
  Value returned = terminator->getOperand(0);
  if (block.getOperations().size() == 1) {
    if (allowOverwrite && returned == block.getArgument(1))
      return static_cast<Operation *>(nullptr);
    return fail(allowOverwrite ? "expected a combining op or the return of "
                                 "the update"
                               : "expected a combining op");
  }
  Operation *combiner = &block.front();
  if (block.getOperations().size() != 2 || returned.getDefiningOp() != combiner ||
      combiner->getNumOperands() != 2 ||
      !((combiner->getOperand(0) == block.getArgument(0) &&
         combiner->getOperand(1) == block.getArgument(1)) ||
        (combiner->getOperand(0) == block.getArgument(1) &&
         combiner->getOperand(1) == block.getArgument(0))))
    return fail("expected one op combining the two arguments");
  StringRef name = combiner->getName().getStringRef();
  if (!isSupportedCombiner(name, element))
    return fail("'" + name + "' is not a supported combiner for " +
                llvm::formatv("{0}", element).str());
  return combiner;
}

//===----------------------------------------------------------------------===//
// Checking the input
//===----------------------------------------------------------------------===//

namespace {

bool isSupportedElementType(Type type) {
  if (type.isF16() || type.isBF16() || type.isF32() || type.isF64())
    return true;
  auto integer = dyn_cast<IntegerType>(type);
  return integer && integer.isSignless() &&
         llvm::is_contained({1u, 8u, 16u, 32u, 64u}, integer.getWidth());
}

/// Attributes that carry metadata only.
bool isMetadataAttribute(StringRef name) {
  return name.starts_with("mhlo.") || name.starts_with("jax.") ||
         name.starts_with("sdy.") || name.starts_with("kvc.");
}

LogicalResult checkTypes(Operation *op) {
  for (Value value : llvm::concat<Value>(op->getOperands(), op->getResults())) {
    auto type = dyn_cast<RankedTensorType>(value.getType());
    if (!type)
      return op->emitError() << "unsupported type " << value.getType()
                             << " (expected a ranked tensor)";
    if (!type.hasStaticShape())
      return op->emitError() << "dynamic shape " << type
                             << " is not supported";
    if (!isSupportedElementType(type.getElementType()))
      return op->emitError() << "element type " << type.getElementType()
                             << " is not supported (f16, bf16, f32, f64 and "
                                "signless i1/i8/i16/i32/i64 are)";
  }
  return success();
}

LogicalResult checkAttributes(Operation *op, const StableHLOPattern &pattern) {
  SmallVector<NamedAttribute> attrs(op->getDiscardableAttrs());
  if (auto props =
          dyn_cast_or_null<DictionaryAttr>(op->getPropertiesAsAttribute()))
    llvm::append_range(attrs, props.getValue());
  for (NamedAttribute attr : attrs) {
    StringRef name = attr.getName().strref();
    if (!llvm::is_contained(pattern.getKnownAttributes(), name) &&
        !isMetadataAttribute(name))
      return op->emitError() << "unsupported attribute '" << name << "' on '"
                             << op->getName() << "'";
  }
  return success();
}

/// Checks every op of `module`; emits one error per bad op.
LogicalResult checkModule(
    ModuleOp module, const llvm::StringMap<const StableHLOPattern *> &known) {
  bool ok = true;
  module.walk<WalkOrder::PreOrder>([&](Operation *op) {
    if (op->isRegistered())
      return WalkResult::advance();
    StringRef name = op->getName().getStringRef();
    auto it = known.find(name);
    if (it == known.end()) {
      op->emitError() << "unsupported op '" << name << "'";
      ok = false;
      return WalkResult::skip();
    }
    if (failed(checkTypes(op)) || failed(checkAttributes(op, *it->second)) ||
        failed(it->second->check(op)))
      ok = false;
    // Reduce and scatter bodies were read by their pattern's check.
    return WalkResult::skip();
  });
  return success(ok);
}

//===----------------------------------------------------------------------===//
// Inlining private functions
//===----------------------------------------------------------------------===//

/// Inlines the calls to private single-block functions; returns whether it
/// inlined any.
bool inlinePrivateCalls(ModuleOp module, SymbolTable &symbols) {
  bool changed = false;
  SmallVector<func::CallOp> calls;
  module.walk([&](func::CallOp call) { calls.push_back(call); });
  for (func::CallOp call : calls) {
    auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
    if (!callee || !callee.isPrivate() || callee.isExternal() ||
        !callee.getBody().hasOneBlock() ||
        callee == call->getParentOfType<func::FuncOp>())
      continue;
    Block &body = callee.getBody().front();
    auto ret = dyn_cast<func::ReturnOp>(body.getTerminator());
    if (!ret)
      continue;
    IRMapping mapping;
    mapping.map(body.getArguments(), call.getOperands());
    OpBuilder builder(call);
    for (Operation &op : body.without_terminator())
      builder.clone(op, mapping);
    SmallVector<Value> results;
    for (Value value : ret.getOperands())
      results.push_back(mapping.lookupOrDefault(value));
    call.replaceAllUsesWith(results);
    call.erase();
    changed = true;
  }
  return changed;
}

void inlineAndDropPrivateFunctions(ModuleOp module) {
  SymbolTable symbols(module);
  // Private functions calling private functions: a few rounds; recursion
  // stays as calls.
  for (unsigned round = 0; round < 8 && inlinePrivateCalls(module, symbols);
       ++round) {
  }
  // The module's own symbol name (JAX names it) must not hide the uses, so
  // collect the referenced names from the body.
  llvm::StringSet<> referenced;
  if (std::optional<SymbolTable::UseRange> uses =
          SymbolTable::getSymbolUses(&module.getBodyRegion()))
    for (const SymbolTable::SymbolUse &use : *uses)
      referenced.insert(use.getSymbolRef().getRootReference().getValue());
  for (auto func : llvm::make_early_inc_range(module.getOps<func::FuncOp>()))
    if (func.isPrivate() && !referenced.contains(func.getSymName()))
      func.erase();
}

//===----------------------------------------------------------------------===//
// Folding constant computations
//===----------------------------------------------------------------------===//

/// The splat value of a constant tensor, or null.
Attribute splatOf(Value value) {
  DenseElementsAttr dense;
  if (!matchPattern(value, m_Constant(&dense)) || !dense.isSplat())
    return {};
  return dense.getSplatValue<Attribute>();
}

/// Replaces a linalg.generic whose inputs are splat constants and whose body
/// folds to a constant by that constant (e.g. JAX's `sqrt(64.0)` attention
/// scale: kvc-raise-attention needs it as a number).
void foldConstantGenerics(func::FuncOp func) {
  SmallVector<linalg::GenericOp> generics;
  func.walk([&](linalg::GenericOp op) { generics.push_back(op); });
  for (linalg::GenericOp op : generics) {
    if (op->getNumResults() != 1 || !op.hasPureTensorSemantics() ||
        !isMemoryEffectFree(op))
      continue;
    Block *body = op.getBlock();
    llvm::DenseMap<Value, Attribute> known;
    bool constant = true;
    for (OpOperand *input : op.getDpsInputOperands()) {
      Attribute splat = splatOf(input->get());
      constant &= bool(splat);
      known[op.getMatchingBlockArgument(input)] = splat;
    }
    for (Operation &inner : body->without_terminator()) {
      if (!constant)
        break;
      SmallVector<Attribute> operands;
      for (Value operand : inner.getOperands()) {
        Attribute attr = known.lookup(operand);
        if (!attr)
          matchPattern(operand, m_Constant(&attr));
        operands.push_back(attr);
      }
      SmallVector<OpFoldResult> folded;
      if (inner.getNumResults() != 1 || failed(inner.fold(operands, folded)) ||
          folded.size() != 1 || !isa<Attribute>(folded[0])) {
        constant = false;
        break;
      }
      known[inner.getResult(0)] = cast<Attribute>(folded[0]);
    }
    Value yielded = body->getTerminator()->getOperand(0);
    Attribute result = known.lookup(yielded);
    if (!result)
      matchPattern(yielded, m_Constant(&result));
    auto type = tensorType(op->getResult(0));
    auto typed = dyn_cast_or_null<TypedAttr>(result);
    if (!constant || !typed || typed.getType() != type.getElementType())
      continue;
    OpBuilder builder(op);
    Value replacement = arith::ConstantOp::create(
        builder, op.getLoc(), DenseElementsAttr::get(type, typed));
    op->getResult(0).replaceAllUsesWith(replacement);
    op->erase();
  }
}

//===----------------------------------------------------------------------===//
// The pass
//===----------------------------------------------------------------------===//

struct StableHLOToLinalgPass
    : public mlir::kvc::impl::KVCStableHLOToLinalgBase<StableHLOToLinalgPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *context = &getContext();
    RewritePatternSet patterns(context);
    populateElementwisePatterns(patterns);
    populateShapePatterns(patterns);
    populateContractionPatterns(patterns);
    populateGatherScatterPatterns(patterns);

    llvm::StringMap<const StableHLOPattern *> known;
    for (const std::unique_ptr<RewritePattern> &pattern :
         patterns.getNativePatterns())
      if (std::optional<OperationName> root = pattern->getRootKind())
        known[root->getStringRef()] =
            static_cast<const StableHLOPattern *>(pattern.get());
    if (failed(checkModule(module, known)))
      return signalPassFailure();

    if (inlinePrivateCalls)
      inlineAndDropPrivateFunctions(module);

    ConversionTarget target(*context);
    target.addLegalDialect<arith::ArithDialect, func::FuncDialect,
                           linalg::LinalgDialect, math::MathDialect,
                           scf::SCFDialect, tensor::TensorDialect>();
    target.addIllegalDialect("stablehlo");
    if (failed(applyPartialConversion(module, target, std::move(patterns))))
      return signalPassFailure();
    for (auto func : module.getOps<func::FuncOp>()) {
      foldConstantGenerics(func);
      if (unstackCaches)
        unstackLayerArguments(func);
    }
    // JAX repeats computations (the clamped cache position per K and V
    // update, broadcasts of one constant): kvc-raise-attention must see one
    // value where the program has one.
    IRRewriter rewriter(context);
    DominanceInfo dominance;
    eliminateCommonSubExpressions(rewriter, dominance, module);
  }
};

} // namespace
