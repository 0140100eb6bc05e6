//===- ElementwiseOps.cpp - unary, binary, Where and Cast -----------------===//
//
// Each elementwise op is one scalar body. On real tensors it becomes a
// broadcasting linalg.generic; on the small integer tensors of shape
// arithmetic the same body runs on the elements (folded in C++ when they
// are constants, emitted on `index` values when they are not).
//
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;

namespace kvc {
namespace onnx_import {
namespace {

/// Folds integer elements (booleans as 0/1); nullopt when it cannot.
using IntFolder = std::function<std::optional<int64_t>(ArrayRef<int64_t>)>;

/// How the result element type follows from the inputs.
enum class ResultType { First, Bool, Second };

/// Which element types the operands may have.
enum class Operands {
  /// Floats or integers, all the same type.
  Numeric,
  /// Anything, all the same type (comparisons).
  Same,
  /// Floats only.
  Float,
  /// Booleans only.
  Bool,
  /// Where: a boolean condition and two operands of one type.
  Select,
  /// Cast: anything.
  Any
};

struct ElementwiseSpec {
  unsigned arity;
  ScalarBuilder body;
  IntFolder fold;
  ResultType result = ResultType::First;
  Operands operands = Operands::Numeric;
};

bool isFloat(Value v) { return isa<FloatType>(v.getType()); }

Value constantLike(OpBuilder &b, Location l, Value like, double v) {
  Type type = like.getType();
  if (auto f = dyn_cast<FloatType>(type))
    return arith::ConstantOp::create(b, l, b.getFloatAttr(f, v));
  return arith::ConstantOp::create(b, l, b.getIntegerAttr(type, int64_t(v)));
}

/// A binary body: float op or integer op.
template <typename FloatOp, typename IntOp>
ScalarBuilder binary() {
  return [](OpBuilder &b, Location l, ValueRange a) -> Value {
    if (isFloat(a[0]))
      return FloatOp::create(b, l, a[0], a[1]);
    return IntOp::create(b, l, a[0], a[1]);
  };
}

ScalarBuilder compare(arith::CmpFPredicate f, arith::CmpIPredicate i) {
  return [=](OpBuilder &b, Location l, ValueRange a) -> Value {
    if (isFloat(a[0]))
      return arith::CmpFOp::create(b, l, f, a[0], a[1]);
    return arith::CmpIOp::create(b, l, i, a[0], a[1]);
  };
}

template <typename FloatOp>
ScalarBuilder unaryFloat() {
  return [](OpBuilder &b, Location l, ValueRange a) -> Value {
    return FloatOp::create(b, l, a[0]);
  };
}

ElementwiseSpec spec(unsigned arity, ScalarBuilder body, IntFolder fold = {},
                     ResultType result = ResultType::First,
                     Operands operands = Operands::Numeric) {
  return ElementwiseSpec{arity, std::move(body), std::move(fold), result,
                         operands};
}

ElementwiseSpec floatSpec(ScalarBuilder body) {
  return spec(1, std::move(body), {}, ResultType::First, Operands::Float);
}

ElementwiseSpec boolSpec(unsigned arity, ScalarBuilder body, IntFolder fold) {
  return spec(arity, std::move(body), std::move(fold), ResultType::First,
              Operands::Bool);
}

/// Checks the operands' element types against what the op accepts.
LogicalResult checkOperandTypes(Importer &im, const ElementwiseSpec &s,
                                ArrayRef<TensorValue *> inputs) {
  auto element = [&](unsigned i) { return inputs[i]->type.getElementType(); };
  auto bad = [&](StringRef what) {
    return im.nodeError() << what, failure();
  };
  switch (s.operands) {
  case Operands::Any:
    return success();
  case Operands::Float:
    if (!isa<FloatType>(element(0)))
      return bad("expects a float operand");
    break;
  case Operands::Bool:
    for (unsigned i = 0; i < inputs.size(); ++i)
      if (!element(i).isInteger(1))
        return bad("expects boolean operands");
    return success();
  case Operands::Select:
    if (!element(0).isInteger(1))
      return bad("the condition must be boolean");
    if (element(1) != element(2))
      return bad("both branches must have one element type");
    return success();
  case Operands::Numeric:
    if (element(0).isInteger(1))
      return bad("expects numeric (not boolean) operands");
    break;
  case Operands::Same:
    break;
  }
  for (unsigned i = 1; i < inputs.size(); ++i)
    if (element(i) != element(0))
      return bad("operands differ in element type");
  return success();
}

/// The symbolic path: all operands are small integer tensors with known
/// elements.
LogicalResult importOnElements(Importer &im, const ElementwiseSpec &s,
                               ArrayRef<TensorValue *> inputs,
                               Type resultElement) {
  SmallVector<SmallVector<OpFoldResult>> elems;
  int64_t length = 1, rank = 0;
  for (TensorValue *in : inputs) {
    elems.push_back(*im.elementsOf(*in));
    rank = std::max<int64_t>(rank, in->type.getRank());
    int64_t n = elems.back().size();
    if (n != 1 && length != 1 && n != length)
      return im.nodeError() << "operand lengths " << length << " and " << n
                            << " do not broadcast",
             failure();
    if (n != 1)
      length = n;
  }
  Builder &b = im.builder;
  SmallVector<OpFoldResult> out;
  for (int64_t i = 0; i < length; ++i) {
    SmallVector<OpFoldResult> args;
    for (auto &e : elems)
      args.push_back(e.size() == 1 ? e[0] : e[i]);
    SmallVector<int64_t> constants;
    for (OpFoldResult a : args)
      if (auto attr = dyn_cast<Attribute>(a)) {
        auto integer = cast<IntegerAttr>(attr);
        constants.push_back(integer.getType().isInteger(1)
                                ? int64_t(!integer.getValue().isZero())
                                : integer.getValue().getSExtValue());
      }
    if (constants.size() == args.size() && s.fold)
      if (std::optional<int64_t> folded = s.fold(constants)) {
        out.push_back(IntegerAttr::get(resultElement, *folded));
        continue;
      }
    // Emit the body on index (integers) and i1 (booleans) values.
    SmallVector<Value> values;
    for (auto [k, a] : llvm::enumerate(args)) {
      if (auto attr = dyn_cast<Attribute>(a)) {
        auto integer = cast<IntegerAttr>(attr);
        values.push_back(
            integer.getType().isInteger(1)
                ? Value(arith::ConstantOp::create(im.builder, im.loc, integer))
                : im.indexConstant(integer.getInt()));
        continue;
      }
      values.push_back(cast<Value>(a));
    }
    Value v = s.body(im.builder, im.loc, values);
    if (!resultElement.isInteger(1) && v.getType().isInteger(1))
      v = arith::IndexCastUIOp::create(im.builder, im.loc, b.getIndexType(),
                                       v);
    else if (!resultElement.isInteger(1) && !v.getType().isIndex())
      v = arith::IndexCastOp::create(im.builder, im.loc, b.getIndexType(), v);
    out.push_back(v);
  }
  TensorValue result;
  result.type = RankedTensorType::get(
      rank == 0 ? ArrayRef<int64_t>{} : ArrayRef<int64_t>{length},
      resultElement);
  result.elems = std::move(out);
  im.setOutput(0, std::move(result));
  return success();
}

LogicalResult importElementwise(Importer &im, const ElementwiseSpec &s,
                                Type castTo = Type()) {
  if (im.numInputs() != s.arity && !(s.arity == 0 && im.numInputs() >= 1))
    return im.nodeError() << "expects " << s.arity << " inputs, got "
                          << im.numInputs(),
           failure();
  SmallVector<TensorValue *> inputs;
  for (unsigned i = 0; i < im.numInputs(); ++i) {
    FailureOr<TensorValue *> in = im.input(i);
    if (failed(in))
      return failure();
    inputs.push_back(*in);
  }
  if (failed(checkOperandTypes(im, s, inputs)))
    return failure();
  Type resultElement =
      castTo ? castTo
      : s.result == ResultType::Bool
          ? Type(im.builder.getI1Type())
          : inputs[s.result == ResultType::Second ? 1 : 0]
                ->type.getElementType();

  bool onElements = resultElement.isInteger() &&
                    llvm::all_of(inputs, [&](TensorValue *in) {
                      return in->type.getElementType().isInteger() &&
                             im.elementsOf(*in).has_value();
                    });
  if (onElements)
    return importOnElements(im, s, inputs, resultElement);

  SmallVector<ElementwiseOperand> operands;
  for (TensorValue *in : inputs)
    operands.push_back(im.operandOf(*in));
  FailureOr<Value> result = im.elementwise(operands, resultElement, s.body);
  if (failed(result))
    return failure();
  im.setOutput(0, *result);
  return success();
}

/// Two's complement arithmetic, as the IR's arith ops compute it (no
/// undefined behaviour on overflow).
int64_t wrap(int64_t a, int64_t b, char op) {
  uint64_t x = uint64_t(a), y = uint64_t(b);
  uint64_t r = op == '+' ? x + y : op == '-' ? x - y : x * y;
  return int64_t(r);
}

std::optional<int64_t> divide(ArrayRef<int64_t> a) {
  if (a[1] == 0 || (a[0] == INT64_MIN && a[1] == -1))
    return std::nullopt;
  return a[0] / a[1];
}

/// Pow with a constant exponent 2 or 0.5 is x*x or sqrt(x), exactly.
LogicalResult importPow(Importer &im) {
  FailureOr<TensorValue *> exponent = im.input(1);
  if (failed(exponent))
    return failure();
  TypedAttr splat = im.splatOf(**exponent);
  double e = std::nan("");
  if (auto f = dyn_cast_or_null<FloatAttr>(splat))
    e = f.getValueAsDouble();
  else if (auto i = dyn_cast_or_null<IntegerAttr>(splat))
    e = double(i.getInt());
  auto body = [e](OpBuilder &b, Location l, ValueRange a) -> Value {
    Value x = a[0];
    if (e == 2.0)
      return arith::MulFOp::create(b, l, x, x);
    if (e == 0.5)
      return math::SqrtOp::create(b, l, x);
    if (e == 1.0)
      return x;
    Value y = a[1];
    if (y.getType() != x.getType()) {
      if (isa<FloatType>(y.getType()))
        y = y.getType().getIntOrFloatBitWidth() <
                    x.getType().getIntOrFloatBitWidth()
                ? Value(arith::ExtFOp::create(b, l, x.getType(), y))
                : Value(arith::TruncFOp::create(b, l, x.getType(), y));
      else
        y = arith::SIToFPOp::create(b, l, x.getType(), y);
    }
    return math::PowFOp::create(b, l, x, y);
  };
  FailureOr<TensorValue *> base = im.input(0);
  if (failed(base))
    return failure();
  if (!isa<FloatType>((*base)->type.getElementType()))
    return im.nodeError() << "integer Pow is not supported", failure();
  return importElementwise(
      im, spec(2, body, {}, ResultType::First, Operands::Any));
}

LogicalResult importCast(Importer &im) {
  if (failed(im.checkAttributes({"to", "saturate"})))
    return failure();
  FailureOr<int64_t> to = im.intAttr("to", std::nullopt);
  if (failed(to))
    return failure();
  Type element = convertElementType(im.context, int32_t(*to));
  if (!element)
    return im.nodeError() << "unsupported target type " << *to, failure();
  Importer *importer = &im;
  auto body = [importer, element](OpBuilder &b, Location l,
                                  ValueRange a) -> Value {
    Value v = a[0];
    // Shape arithmetic runs on index values; integers stay index.
    if (v.getType().isIndex())
      return element.isInteger(1)
                 ? Value(arith::CmpIOp::create(
                       b, l, arith::CmpIPredicate::ne, v,
                       arith::ConstantIndexOp::create(b, l, 0)))
                 : v;
    return importer->castScalar(b, l, v, element);
  };
  auto fold = [element](ArrayRef<int64_t> a) -> std::optional<int64_t> {
    if (element.isInteger(1))
      return int64_t(a[0] != 0);
    return a[0];
  };
  // Between integer types the known elements carry over unchanged.
  return importElementwise(
      im, spec(1, body, fold, ResultType::First, Operands::Any), element);
}

std::optional<int64_t> foldWhere(ArrayRef<int64_t> a) {
  return a[0] ? a[1] : a[2];
}

} // namespace

void addElementwiseOps(OpTable &table) {
  using P = arith::CmpFPredicate;
  using I = arith::CmpIPredicate;
  auto add = [&](StringRef name, ElementwiseSpec s) {
    table[name] = [s](Importer &im) { return importElementwise(im, s); };
  };
  add("Add", spec(2, binary<arith::AddFOp, arith::AddIOp>(),
                  [](ArrayRef<int64_t> a) { return std::optional(wrap(a[0], a[1], '+')); }));
  add("Sub", spec(2, binary<arith::SubFOp, arith::SubIOp>(),
                  [](ArrayRef<int64_t> a) { return std::optional(wrap(a[0], a[1], '-')); }));
  add("Mul", spec(2, binary<arith::MulFOp, arith::MulIOp>(),
                  [](ArrayRef<int64_t> a) { return std::optional(wrap(a[0], a[1], '*')); }));
  add("Div", spec(2, binary<arith::DivFOp, arith::DivSIOp>(), divide));
  add("Max", spec(2, binary<arith::MaximumFOp, arith::MaxSIOp>(),
                  [](ArrayRef<int64_t> a) {
                    return std::optional(std::max(a[0], a[1]));
                  }));
  add("Min", spec(2, binary<arith::MinimumFOp, arith::MinSIOp>(),
                  [](ArrayRef<int64_t> a) {
                    return std::optional(std::min(a[0], a[1]));
                  }));
  add("Equal", spec(2, compare(P::OEQ, I::eq),
                    [](ArrayRef<int64_t> a) {
                      return std::optional<int64_t>(a[0] == a[1]);
                    },
                    ResultType::Bool, Operands::Same));
  add("Less", spec(2, compare(P::OLT, I::slt),
                   [](ArrayRef<int64_t> a) {
                     return std::optional<int64_t>(a[0] < a[1]);
                   },
                   ResultType::Bool, Operands::Same));
  add("LessOrEqual", spec(2, compare(P::OLE, I::sle),
                          [](ArrayRef<int64_t> a) {
                            return std::optional<int64_t>(a[0] <= a[1]);
                          },
                          ResultType::Bool, Operands::Same));
  add("Greater", spec(2, compare(P::OGT, I::sgt),
                      [](ArrayRef<int64_t> a) {
                        return std::optional<int64_t>(a[0] > a[1]);
                      },
                      ResultType::Bool, Operands::Same));
  add("GreaterOrEqual", spec(2, compare(P::OGE, I::sge),
                             [](ArrayRef<int64_t> a) {
                               return std::optional<int64_t>(a[0] >= a[1]);
                             },
                             ResultType::Bool, Operands::Same));
  add("And", boolSpec(2, binary<arith::AndIOp, arith::AndIOp>(),
                  [](ArrayRef<int64_t> a) {
                    return std::optional<int64_t>(a[0] && a[1]);
                  }));
  add("Or", boolSpec(2, binary<arith::OrIOp, arith::OrIOp>(),
                 [](ArrayRef<int64_t> a) {
                   return std::optional<int64_t>(a[0] || a[1]);
                 }));
  add("Xor", boolSpec(2, binary<arith::XOrIOp, arith::XOrIOp>(),
                  [](ArrayRef<int64_t> a) {
                    return std::optional<int64_t>((a[0] != 0) != (a[1] != 0));
                  }));
  add("Not", boolSpec(1,
                  [](OpBuilder &b, Location l, ValueRange a) -> Value {
                    Value t = arith::ConstantOp::create(b, l, b.getBoolAttr(true));
                    return arith::XOrIOp::create(b, l, a[0], t);
                  },
                  [](ArrayRef<int64_t> a) { return std::optional<int64_t>(!a[0]); }));
  add("Neg", spec(1,
                  [](OpBuilder &b, Location l, ValueRange a) -> Value {
                    if (isFloat(a[0]))
                      return arith::NegFOp::create(b, l, a[0]);
                    return arith::SubIOp::create(
                        b, l, constantLike(b, l, a[0], 0), a[0]);
                  },
                  [](ArrayRef<int64_t> a) { return std::optional(wrap(0, a[0], '-')); }));
  add("Abs", spec(1,
                  [](OpBuilder &b, Location l, ValueRange a) -> Value {
                    if (isFloat(a[0]))
                      return math::AbsFOp::create(b, l, a[0]);
                    return math::AbsIOp::create(b, l, a[0]);
                  },
                  [](ArrayRef<int64_t> a) {
                    return std::optional(a[0] < 0 ? wrap(0, a[0], '-') : a[0]);
                  }));
  add("Where", spec(3,
                    [](OpBuilder &b, Location l, ValueRange a) -> Value {
                      return arith::SelectOp::create(b, l, a[0], a[1], a[2]);
                    },
                    foldWhere, ResultType::Second, Operands::Select));
  add("Sqrt", floatSpec(unaryFloat<math::SqrtOp>()));
  add("Exp", floatSpec(unaryFloat<math::ExpOp>()));
  add("Log", floatSpec(unaryFloat<math::LogOp>()));
  add("Cos", floatSpec(unaryFloat<math::CosOp>()));
  add("Sin", floatSpec(unaryFloat<math::SinOp>()));
  add("Tanh", floatSpec(unaryFloat<math::TanhOp>()));
  add("Erf", floatSpec(unaryFloat<math::ErfOp>()));
  add("Floor", floatSpec(unaryFloat<math::FloorOp>()));
  add("Ceil", floatSpec(unaryFloat<math::CeilOp>()));
  add("Reciprocal", floatSpec([](OpBuilder &b, Location l, ValueRange a) -> Value {
        return arith::DivFOp::create(b, l, constantLike(b, l, a[0], 1.0), a[0]);
      }));
  add("Sigmoid", floatSpec([](OpBuilder &b, Location l, ValueRange a) -> Value {
        Value neg = arith::NegFOp::create(b, l, a[0]);
        Value e = math::ExpOp::create(b, l, neg);
        Value one = constantLike(b, l, a[0], 1.0);
        Value den = arith::AddFOp::create(b, l, one, e);
        return arith::DivFOp::create(b, l, one, den);
      }));
  add("Relu", floatSpec([](OpBuilder &b, Location l, ValueRange a) -> Value {
        return arith::MaximumFOp::create(b, l, a[0],
                                         constantLike(b, l, a[0], 0.0));
      }));
  table["Pow"] = importPow;
  table["Cast"] = importCast;
}

} // namespace onnx_import
} // namespace kvc
