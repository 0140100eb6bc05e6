//===- ElementwiseOps.cpp - elementwise StableHLO ops to linalg.generic ---===//
//
// Elementwise ops, compare, select, clamp, convert, constant and iota. Each
// becomes one linalg.generic whose body is the scalar arith/math op, the
// form kvc-raise-attention reads through. Transcendental math on f16/bf16
// is computed in f32 (what XLA does on CPU; the CPU lowering has no
// narrow-float libm).
//
//===----------------------------------------------------------------------===//

#include "Patterns.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Matchers.h"

using namespace mlir;
using namespace mlir::kvc;
using namespace mlir::kvc::shlo;

namespace {

enum TypeClass : unsigned { kFloat = 1, kInt = 2, kBool = 4 };

unsigned classOf(Type type) {
  if (isa<FloatType>(type))
    return kFloat;
  if (type.isInteger(1))
    return kBool;
  return kInt;
}

using ScalarFn = Value (*)(OpBuilder &, Location, ValueRange);

/// Applies a float math op in f32 when the operands are narrower.
template <typename OpTy>
Value mathOp(OpBuilder &b, Location loc, ValueRange args) {
  auto type = cast<FloatType>(args[0].getType());
  if (type.getWidth() >= 32)
    return OpTy::create(b, loc, args).getResult();
  SmallVector<Value> wide;
  for (Value arg : args)
    wide.push_back(arith::ExtFOp::create(b, loc, b.getF32Type(), arg));
  Value result = OpTy::create(b, loc, wide).getResult();
  return arith::TruncFOp::create(b, loc, type, result);
}

/// Float, integer and boolean forms of one binary op.
template <typename FOp, typename IOp, typename BOp>
Value binaryOp(OpBuilder &b, Location loc, ValueRange args) {
  Type type = args[0].getType();
  if (isa<FloatType>(type)) {
    if constexpr (!std::is_void_v<FOp>)
      return FOp::create(b, loc, args[0], args[1]);
  } else if (type.isInteger(1)) {
    if constexpr (!std::is_void_v<BOp>)
      return BOp::create(b, loc, args[0], args[1]);
  } else {
    if constexpr (!std::is_void_v<IOp>)
      return IOp::create(b, loc, args[0], args[1]);
  }
  llvm_unreachable("element type checked before conversion");
}

Value constantLike(OpBuilder &b, Location loc, Type type, double value) {
  if (auto floatType = dyn_cast<FloatType>(type))
    return arith::ConstantOp::create(b, loc, b.getFloatAttr(floatType, value));
  return arith::ConstantOp::create(
      b, loc, b.getIntegerAttr(type, static_cast<int64_t>(value)));
}

Value negate(OpBuilder &b, Location loc, ValueRange args) {
  Type type = args[0].getType();
  if (isa<FloatType>(type))
    return arith::NegFOp::create(b, loc, args[0]);
  return arith::SubIOp::create(b, loc, constantLike(b, loc, type, 0), args[0]);
}

Value absolute(OpBuilder &b, Location loc, ValueRange args) {
  if (isa<FloatType>(args[0].getType()))
    return math::AbsFOp::create(b, loc, args[0]);
  return math::AbsIOp::create(b, loc, args[0]);
}

Value logicalNot(OpBuilder &b, Location loc, ValueRange args) {
  Type type = args[0].getType();
  Value ones = arith::ConstantOp::create(
      b, loc, b.getIntegerAttr(type, APInt::getAllOnes(type.getIntOrFloatBitWidth())));
  return arith::XOrIOp::create(b, loc, args[0], ones);
}

Value logistic(OpBuilder &b, Location loc, ValueRange args) {
  Type type = args[0].getType();
  Value neg = arith::NegFOp::create(b, loc, args[0]);
  Value exp = mathOp<math::ExpOp>(b, loc, neg);
  Value one = constantLike(b, loc, type, 1.0);
  Value denominator = arith::AddFOp::create(b, loc, one, exp);
  return arith::DivFOp::create(b, loc, one, denominator);
}

/// -1, 0 or 1 by the sign (floats keep ±0 and NaN).
Value sign(OpBuilder &b, Location loc, ValueRange args) {
  Value x = args[0];
  Type type = x.getType();
  Value zero = constantLike(b, loc, type, 0);
  Value one = constantLike(b, loc, type, 1);
  Value minusOne = constantLike(b, loc, type, -1);
  Value positive, negative, otherwise = zero;
  if (isa<FloatType>(type)) {
    positive = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, x, zero);
    negative = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLT, x, zero);
    otherwise = x;
  } else {
    positive = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sgt, x, zero);
    negative = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, x, zero);
  }
  Value inner = arith::SelectOp::create(b, loc, negative, minusOne, otherwise);
  return arith::SelectOp::create(b, loc, positive, one, inner);
}

/// 1 / sqrt(x): math.rsqrt has no libm function to lower to on CPU.
Value reciprocalSqrt(OpBuilder &b, Location loc, ValueRange args) {
  Value root = mathOp<math::SqrtOp>(b, loc, args);
  return arith::DivFOp::create(b, loc, constantLike(b, loc, root.getType(), 1.0),
                               root);
}

struct ElementwiseSpec {
  StringLiteral name;
  unsigned arity;
  unsigned types;
  ScalarFn build;
};

const ElementwiseSpec kElementwise[] = {
    {"stablehlo.add", 2, kFloat | kInt | kBool,
     binaryOp<arith::AddFOp, arith::AddIOp, arith::OrIOp>},
    {"stablehlo.subtract", 2, kFloat | kInt,
     binaryOp<arith::SubFOp, arith::SubIOp, void>},
    {"stablehlo.multiply", 2, kFloat | kInt | kBool,
     binaryOp<arith::MulFOp, arith::MulIOp, arith::AndIOp>},
    {"stablehlo.divide", 2, kFloat | kInt,
     binaryOp<arith::DivFOp, arith::DivSIOp, void>},
    {"stablehlo.remainder", 2, kFloat | kInt,
     binaryOp<arith::RemFOp, arith::RemSIOp, void>},
    {"stablehlo.maximum", 2, kFloat | kInt | kBool,
     binaryOp<arith::MaximumFOp, arith::MaxSIOp, arith::OrIOp>},
    {"stablehlo.minimum", 2, kFloat | kInt | kBool,
     binaryOp<arith::MinimumFOp, arith::MinSIOp, arith::AndIOp>},
    {"stablehlo.and", 2, kInt | kBool,
     binaryOp<void, arith::AndIOp, arith::AndIOp>},
    {"stablehlo.or", 2, kInt | kBool, binaryOp<void, arith::OrIOp, arith::OrIOp>},
    {"stablehlo.xor", 2, kInt | kBool,
     binaryOp<void, arith::XOrIOp, arith::XOrIOp>},
    {"stablehlo.power", 2, kFloat, mathOp<math::PowFOp>},
    {"stablehlo.atan2", 2, kFloat, mathOp<math::Atan2Op>},
    {"stablehlo.negate", 1, kFloat | kInt, negate},
    {"stablehlo.abs", 1, kFloat | kInt, absolute},
    {"stablehlo.not", 1, kInt | kBool, logicalNot},
    {"stablehlo.sign", 1, kFloat | kInt, sign},
    {"stablehlo.sqrt", 1, kFloat, mathOp<math::SqrtOp>},
    {"stablehlo.rsqrt", 1, kFloat, reciprocalSqrt},
    {"stablehlo.cbrt", 1, kFloat, mathOp<math::CbrtOp>},
    {"stablehlo.exponential", 1, kFloat, mathOp<math::ExpOp>},
    {"stablehlo.exponential_minus_one", 1, kFloat, mathOp<math::ExpM1Op>},
    {"stablehlo.log", 1, kFloat, mathOp<math::LogOp>},
    {"stablehlo.log_plus_one", 1, kFloat, mathOp<math::Log1pOp>},
    {"stablehlo.logistic", 1, kFloat, logistic},
    {"stablehlo.tanh", 1, kFloat, mathOp<math::TanhOp>},
    {"stablehlo.sine", 1, kFloat, mathOp<math::SinOp>},
    {"stablehlo.cosine", 1, kFloat, mathOp<math::CosOp>},
    {"stablehlo.tan", 1, kFloat, mathOp<math::TanOp>},
    {"stablehlo.floor", 1, kFloat, mathOp<math::FloorOp>},
    {"stablehlo.ceil", 1, kFloat, mathOp<math::CeilOp>},
    {"stablehlo.round_nearest_even", 1, kFloat, mathOp<math::RoundEvenOp>},
    {"stablehlo.round_nearest_afz", 1, kFloat, mathOp<math::RoundOp>},
};

const ElementwiseSpec *findElementwise(StringRef name) {
  for (const ElementwiseSpec &spec : kElementwise)
    if (spec.name == name)
      return &spec;
  return nullptr;
}

std::string typeClassNames(unsigned types) {
  SmallVector<StringRef> names;
  if (types & kFloat)
    names.push_back("float");
  if (types & kInt)
    names.push_back("integer");
  if (types & kBool)
    names.push_back("i1");
  return llvm::join(names, " or ");
}

LogicalResult checkOperandCount(Operation *op, unsigned count) {
  if (op->getNumOperands() != count || op->getNumResults() != 1)
    return op->emitError() << "expected " << count
                           << " operands and 1 result";
  return success();
}

/// Operands of the result's shape, or 0-d where `scalarOk`.
LogicalResult checkShapes(Operation *op, ArrayRef<bool> scalarOk) {
  RankedTensorType result = tensorType(op->getResult(0));
  for (auto [operand, okScalar] : llvm::zip(op->getOperands(), scalarOk)) {
    RankedTensorType type = tensorType(operand);
    if (type.getShape() == result.getShape() ||
        (okScalar && type.getRank() == 0))
      continue;
    return op->emitError() << "operand of type " << type
                           << " does not have the result's shape "
                           << result;
  }
  return success();
}

struct ElementwisePattern : public StableHLOPattern {
  ElementwisePattern(const ElementwiseSpec &spec, MLIRContext *context)
      : StableHLOPattern(spec.name, context), spec(spec) {}

  LogicalResult check(Operation *op) const override {
    if (failed(checkOperandCount(op, spec.arity)))
      return failure();
    Type element = tensorType(op->getOperand(0)).getElementType();
    for (Value value : llvm::concat<Value>(op->getOperands(), op->getResults()))
      if (tensorType(value).getElementType() != element)
        return op->emitError("operands and result must have one element type");
    if (!(classOf(element) & spec.types))
      return op->emitError() << "element type " << element
                             << " is not supported (expected "
                             << typeClassNames(spec.types) << ")";
    return checkShapes(op, SmallVector<bool>(spec.arity, false));
  }

  /// maximum(-inf, x) and minimum(+inf, x) are x (NaN included): JAX's
  /// softmax writes the first, and kvc-raise-attention looks for the bare
  /// row max.
  static Value identityOperand(StringRef name, ArrayRef<Value> operands) {
    bool isMax = name == "stablehlo.maximum";
    if (!isMax && name != "stablehlo.minimum")
      return {};
    for (unsigned i = 0; i < 2; ++i) {
      DenseFPElementsAttr splat;
      if (matchPattern(operands[i], m_Constant(&splat)) && splat.isSplat()) {
        APFloat value = splat.getSplatValue<APFloat>();
        if (value.isInfinity() && value.isNegative() == isMax)
          return operands[1 - i];
      }
    }
    return {};
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    if (Value same = identityOperand(spec.name, operands)) {
      rewriter.replaceOp(op, same);
      return success();
    }
    ScalarFn build = spec.build;
    Value result = buildElementwise(
        rewriter, op->getLoc(), tensorType(op->getResult(0)), operands,
        [&](OpBuilder &b, Location loc, ValueRange args) {
          return build(b, loc, args);
        });
    rewriter.replaceOp(op, result);
    return success();
  }

  const ElementwiseSpec &spec;
};

struct ComparePattern : public StableHLOPattern {
  static constexpr StringLiteral kDirections[] = {"EQ", "NE", "GE",
                                                  "GT", "LE", "LT"};
  static constexpr StringLiteral kTypes[] = {"FLOAT", "SIGNED", "UNSIGNED",
                                             "NOTYPE"};
  ComparePattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.compare", context,
                         {"comparison_direction", "compare_type"}) {}

  static SmallVector<StringRef> list(ArrayRef<StringLiteral> values) {
    return SmallVector<StringRef>(values.begin(), values.end());
  }

  LogicalResult check(Operation *op) const override {
    if (failed(checkOperandCount(op, 2)) ||
        failed(readEnum(op, "comparison_direction", "comparison_direction",
                        list(kDirections), /*required=*/true)))
      return failure();
    FailureOr<StringRef> kind =
        readEnum(op, "compare_type", "comparison_type",
                 {"FLOAT", "TOTALORDER", "SIGNED", "UNSIGNED", "NOTYPE"},
                 /*required=*/false);
    if (failed(kind))
      return failure();
    if (*kind == "TOTALORDER")
      return op->emitError("comparison_type TOTALORDER is not supported");
    if (tensorType(op->getOperand(0)).getElementType() !=
        tensorType(op->getOperand(1)).getElementType())
      return op->emitError("compared operands have different element types");
    if (!tensorType(op->getResult(0)).getElementType().isInteger(1))
      return op->emitError("the result of a comparison must be i1");
    return checkShapes(op, {false, false});
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    StringRef direction = *readEnum(op, "comparison_direction",
                                    "comparison_direction",
                                    list(kDirections), true, false);
    StringRef kind = *readEnum(
        op, "compare_type", "comparison_type",
        {"FLOAT", "TOTALORDER", "SIGNED", "UNSIGNED", "NOTYPE"}, false, false);
    Type element = tensorType(operands[0]).getElementType();
    auto index = llvm::find(kDirections, direction) - std::begin(kDirections);
    Value result = buildElementwise(
        rewriter, op->getLoc(), tensorType(op->getResult(0)), operands,
        [&](OpBuilder &b, Location loc, ValueRange args) -> Value {
          if (isa<FloatType>(element)) {
            static const arith::CmpFPredicate predicates[] = {
                arith::CmpFPredicate::OEQ, arith::CmpFPredicate::UNE,
                arith::CmpFPredicate::OGE, arith::CmpFPredicate::OGT,
                arith::CmpFPredicate::OLE, arith::CmpFPredicate::OLT};
            return arith::CmpFOp::create(b, loc, predicates[index], args[0],
                                         args[1]);
          }
          bool isUnsigned =
              kind == "UNSIGNED" || (kind != "SIGNED" && element.isInteger(1));
          static const arith::CmpIPredicate signedPredicates[] = {
              arith::CmpIPredicate::eq,  arith::CmpIPredicate::ne,
              arith::CmpIPredicate::sge, arith::CmpIPredicate::sgt,
              arith::CmpIPredicate::sle, arith::CmpIPredicate::slt};
          static const arith::CmpIPredicate unsignedPredicates[] = {
              arith::CmpIPredicate::eq,  arith::CmpIPredicate::ne,
              arith::CmpIPredicate::uge, arith::CmpIPredicate::ugt,
              arith::CmpIPredicate::ule, arith::CmpIPredicate::ult};
          return arith::CmpIOp::create(
              b, loc,
              (isUnsigned ? unsignedPredicates : signedPredicates)[index],
              args[0], args[1]);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct SelectPattern : public StableHLOPattern {
  SelectPattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.select", context) {}

  LogicalResult check(Operation *op) const override {
    if (failed(checkOperandCount(op, 3)))
      return failure();
    if (!tensorType(op->getOperand(0)).getElementType().isInteger(1))
      return op->emitError("the predicate of a select must be i1");
    return checkShapes(op, {true, false, false});
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    Value result = buildElementwise(
        rewriter, op->getLoc(), tensorType(op->getResult(0)), operands,
        [](OpBuilder &b, Location loc, ValueRange args) -> Value {
          return arith::SelectOp::create(b, loc, args[0], args[1], args[2]);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct ClampPattern : public StableHLOPattern {
  ClampPattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.clamp", context) {}

  LogicalResult check(Operation *op) const override {
    if (failed(checkOperandCount(op, 3)))
      return failure();
    if (classOf(tensorType(op->getResult(0)).getElementType()) == kBool)
      return op->emitError("clamp of i1 is not supported");
    return checkShapes(op, {true, false, true});
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    Value result = buildElementwise(
        rewriter, op->getLoc(), tensorType(op->getResult(0)), operands,
        [](OpBuilder &b, Location loc, ValueRange args) -> Value {
          if (isa<FloatType>(args[1].getType())) {
            Value low = arith::MaximumFOp::create(b, loc, args[1], args[0]);
            return arith::MinimumFOp::create(b, loc, low, args[2]);
          }
          Value low = arith::MaxSIOp::create(b, loc, args[1], args[0]);
          return arith::MinSIOp::create(b, loc, low, args[2]);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct ConvertPattern : public StableHLOPattern {
  ConvertPattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.convert", context) {}

  LogicalResult check(Operation *op) const override {
    if (failed(checkOperandCount(op, 1)))
      return failure();
    return checkShapes(op, {false});
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    RankedTensorType resultType = tensorType(op->getResult(0));
    if (resultType == operands[0].getType()) {
      rewriter.replaceOp(op, operands[0]);
      return success();
    }
    Type to = resultType.getElementType();
    Value result = buildElementwise(
        rewriter, op->getLoc(), resultType, operands,
        [&](OpBuilder &b, Location loc, ValueRange args) {
          return convertScalar(b, loc, args[0], to);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct ConstantPattern : public StableHLOPattern {
  ConstantPattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.constant", context, {"value"}) {}

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() != 0 || op->getNumResults() != 1)
      return op->emitError("expected no operands and 1 result");
    auto value = dyn_cast_or_null<ElementsAttr>(getOpAttr(op, "value"));
    if (!value)
      return op->emitError("missing or non-elements attribute 'value'");
    if (value.getType() != op->getResult(0).getType())
      return op->emitError() << "constant of type " << value.getType()
                             << " does not match the result type "
                             << op->getResult(0).getType();
    return success();
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    auto value = cast<TypedAttr>(getOpAttr(op, "value"));
    rewriter.replaceOpWithNewOp<arith::ConstantOp>(op, value);
    return success();
  }
};

struct IotaPattern : public StableHLOPattern {
  IotaPattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.iota", context, {"iota_dimension"}) {}

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() != 0 || op->getNumResults() != 1)
      return op->emitError("expected no operands and 1 result");
    FailureOr<int64_t> dim = readInteger(op, "iota_dimension");
    if (failed(dim))
      return failure();
    RankedTensorType type = tensorType(op->getResult(0));
    if (*dim < 0 || *dim >= type.getRank())
      return op->emitError() << "iota_dimension " << *dim
                             << " is out of range for " << type;
    return success();
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    int64_t dim = *readInteger(op, "iota_dimension", false);
    RankedTensorType type = tensorType(op->getResult(0));
    Type element = type.getElementType();
    Value result = buildElementwise(
        rewriter, op->getLoc(), type, {},
        [&](OpBuilder &b, Location loc, ValueRange) -> Value {
          Value index = linalg::IndexOp::create(b, loc, dim);
          Value wide = arith::IndexCastOp::create(b, loc, b.getI64Type(), index);
          return convertScalar(b, loc, wide, element);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

} // namespace

Value shlo::convertScalar(OpBuilder &b, Location loc, Value value, Type to) {
  Type from = value.getType();
  if (from == to)
    return value;
  auto fromFloat = dyn_cast<FloatType>(from);
  auto toFloat = dyn_cast<FloatType>(to);
  if (fromFloat && toFloat) {
    if (fromFloat.getWidth() < toFloat.getWidth())
      return arith::ExtFOp::create(b, loc, to, value);
    if (fromFloat.getWidth() > toFloat.getWidth())
      return arith::TruncFOp::create(b, loc, to, value);
    // Same width, different formats (f16 <-> bf16): through f32.
    Value wide = arith::ExtFOp::create(b, loc, b.getF32Type(), value);
    return arith::TruncFOp::create(b, loc, to, wide);
  }
  if (toFloat) {
    if (from.isInteger(1))
      return arith::UIToFPOp::create(b, loc, to, value);
    return arith::SIToFPOp::create(b, loc, to, value);
  }
  if (to.isInteger(1)) {
    Value zero = constantLike(b, loc, from, 0);
    if (fromFloat)
      return arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNE, value,
                                   zero);
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, value,
                                 zero);
  }
  if (fromFloat)
    return arith::FPToSIOp::create(b, loc, to, value);
  unsigned fromWidth = from.getIntOrFloatBitWidth();
  unsigned toWidth = to.getIntOrFloatBitWidth();
  if (fromWidth > toWidth)
    return arith::TruncIOp::create(b, loc, to, value);
  if (from.isInteger(1))
    return arith::ExtUIOp::create(b, loc, to, value);
  return arith::ExtSIOp::create(b, loc, to, value);
}

bool shlo::isSupportedCombiner(StringRef name, Type type) {
  const ElementwiseSpec *spec = findElementwise(name);
  return spec && spec->arity == 2 && (spec->types & classOf(type));
}

Value shlo::buildCombiner(OpBuilder &builder, Location loc,
                          Operation *combiner, Value lhs, Value rhs) {
  if (!combiner)
    return rhs;
  const ElementwiseSpec *spec =
      findElementwise(combiner->getName().getStringRef());
  return spec->build(builder, loc, ValueRange{lhs, rhs});
}

void shlo::populateElementwisePatterns(RewritePatternSet &patterns) {
  MLIRContext *context = patterns.getContext();
  for (const ElementwiseSpec &spec : kElementwise)
    patterns.add(std::make_unique<ElementwisePattern>(spec, context));
  patterns.add<ComparePattern, SelectPattern, ClampPattern, ConvertPattern,
               ConstantPattern, IotaPattern>(context);
}
