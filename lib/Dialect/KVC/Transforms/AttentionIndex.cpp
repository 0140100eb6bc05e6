//===- AttentionIndex.cpp - index arithmetic of attention expressions -----===//
//
// Masks compare positions: the index of a cache token, of a query, the
// offset where the new tokens go. This file reads such integer expressions
// as linear forms of atom indices and scalar symbols, and uses them to read
// through gathers by position: an ONNX Gather of attention_mask by an
// arange over the cache tokens imports as a tensor.generate whose body
// extracts attention_mask[arange[t]], which is attention_mask[t].
//
//===----------------------------------------------------------------------===//

#include "AttentionExpr.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"

#include <cmath>
#include <map>
#include <vector>

using namespace mlir;
using namespace mlir::kvc;

//===----------------------------------------------------------------------===//
// Linear forms
//===----------------------------------------------------------------------===//

bool LinearForm::isConstant() const {
  return llvm::all_of(atoms, [](auto &p) { return p.second == 0.0; }) &&
         llvm::all_of(symbols, [](auto &p) { return p.second == 0.0; });
}

bool LinearForm::isNonNegative() const {
  return constant >= 0.0 &&
         llvm::all_of(atoms, [](auto &p) { return p.second >= 0.0; }) &&
         llvm::all_of(symbols, [](auto &p) { return p.second >= 0.0; });
}

void LinearForm::add(const LinearForm &other, double factor) {
  constant += factor * other.constant;
  for (auto [atom, coefficient] : other.atoms)
    atoms[atom] += factor * coefficient;
  for (auto [symbol, coefficient] : other.symbols)
    symbols[symbol] += factor * coefficient;
}

std::optional<double> mlir::kvc::constantValue(Expr *expr) {
  expr = stripCasts(expr);
  if (!expr->is(Expr::Kind::Constant))
    return std::nullopt;
  if (auto floatAttr = dyn_cast<FloatAttr>(expr->constant))
    return floatAttr.getValueAsDouble();
  if (auto intAttr = dyn_cast<IntegerAttr>(expr->constant);
      intAttr && !intAttr.getType().isInteger(1))
    return double(intAttr.getValue().getSExtValue());
  return std::nullopt;
}

Value mlir::kvc::stripIntegerCasts(Value value) {
  while (Operation *def = value.getDefiningOp()) {
    if (!isa<arith::IndexCastOp, arith::IndexCastUIOp, arith::ExtSIOp,
             arith::ExtUIOp, arith::TruncIOp, arith::SIToFPOp, arith::UIToFPOp>(
            def))
      break;
    value = def->getOperand(0);
  }
  return value;
}

Value mlir::kvc::positionSymbol(Value value) {
  value = stripIntegerCasts(value);
  if (auto extract = value.getDefiningOp<tensor::ExtractOp>();
      extract && extract.getIndices().empty())
    return extract.getTensor();
  return value;
}

/// Whether `form` is a non-negative combination of tensor sizes plus its
/// constant: never below the constant.
static bool isSizeSum(const LinearForm &form) {
  return llvm::all_of(form.atoms, [](auto &p) { return p.second == 0.0; }) &&
         llvm::all_of(form.symbols, [](auto &p) {
           return p.second == 0.0 ||
                  (p.second > 0.0 &&
                   p.first.template getDefiningOp<tensor::DimOp>());
         });
}

Value mlir::kvc::getSizeValue(Value tensor, unsigned dim) {
  auto type = dyn_cast<RankedTensorType>(tensor.getType());
  if (!type || !type.isDynamicDim(dim))
    return Value();
  Operation *def = tensor.getDefiningOp();
  if (auto empty = dyn_cast_or_null<tensor::EmptyOp>(def))
    return empty.getDynamicSize(dim);
  if (auto generate = dyn_cast_or_null<tensor::GenerateOp>(def))
    return generate.getDynamicExtents()[type.getDynamicDimIndex(dim)];
  if (auto dps = dyn_cast_or_null<DestinationStyleOpInterface>(def))
    return getSizeValue(
        dps.getDpsInitOperand(cast<OpResult>(tensor).getResultNumber())->get(),
        dim);
  return Value();
}

LinearForm mlir::kvc::linearizeScalar(Value value) {
  LinearForm form;
  Value root = stripIntegerCasts(value);
  Attribute constant;
  if (matchPattern(root, m_Constant(&constant))) {
    if (auto intAttr = dyn_cast<IntegerAttr>(constant)) {
      form.constant = double(intAttr.getValue().getSExtValue());
      return form;
    }
    if (auto floatAttr = dyn_cast<FloatAttr>(constant)) {
      form.constant = floatAttr.getValueAsDouble();
      return form;
    }
  }
  // Shape arithmetic such as `past + 1` or `0 + past`.
  Operation *def = root.getDefiningOp();
  if (isa_and_present<arith::DivSIOp, arith::DivUIOp, arith::CeilDivSIOp,
                      arith::CeilDivUIOp, arith::FloorDivSIOp>(def) &&
      linearizeScalar(def->getOperand(1)).isConstant() &&
      linearizeScalar(def->getOperand(1)).constant == 1.0)
    return linearizeScalar(def->getOperand(0));
  if (isa_and_present<arith::MaxSIOp>(def)) {
    // max(x, c) is x when x >= c: x a sum of sizes and a constant >= c.
    for (unsigned side = 0; side < 2; ++side) {
      LinearForm bound = linearizeScalar(def->getOperand(1 - side));
      LinearForm x = linearizeScalar(def->getOperand(side));
      if (bound.isConstant() && isSizeSum(x) && x.constant >= bound.constant)
        return x;
    }
  }
  if (isa_and_present<arith::AddIOp, arith::SubIOp, arith::MulIOp>(def)) {
    LinearForm lhs = linearizeScalar(def->getOperand(0));
    LinearForm rhs = linearizeScalar(def->getOperand(1));
    if (isa<arith::AddIOp>(def)) {
      form.add(lhs, 1.0);
      form.add(rhs, 1.0);
      return form;
    }
    if (isa<arith::SubIOp>(def)) {
      form.add(lhs, 1.0);
      form.add(rhs, -1.0);
      return form;
    }
    if (lhs.isConstant()) {
      form.add(rhs, lhs.constant);
      return form;
    }
    if (rhs.isConstant()) {
      form.add(lhs, rhs.constant);
      return form;
    }
  }
  form.symbols[positionSymbol(root)] = 1.0;
  return form;
}

FailureOr<LinearForm> mlir::kvc::linearize(const AtomTable &table, Expr *expr) {
  LinearForm form;
  switch (expr->kind) {
  case Expr::Kind::Constant: {
    std::optional<double> value = constantValue(expr);
    if (!value)
      return failure();
    form.constant = *value;
    return form;
  }
  case Expr::Kind::Index: {
    // Strides past a dynamic leaf are not constants.
    if (!table.hasStaticStrides(expr->atoms))
      return failure();
    int64_t stride = 1;
    for (AtomId leaf : llvm::reverse(table.leaves(expr->atoms))) {
      form.atoms[leaf] += double(stride);
      if (!table.isDynamic(leaf))
        stride *= table.getSize(leaf);
    }
    return form;
  }
  case Expr::Kind::Scalar: {
    Value root = stripIntegerCasts(expr->scalar);
    Attribute constant;
    if (matchPattern(root, m_Constant(&constant)) &&
        !isa<IntegerAttr, FloatAttr>(constant))
      return failure();
    return linearizeScalar(root);
  }
  case Expr::Kind::Read:
    // A 0-d tensor broadcast over the scores: a scalar position.
    if (cast<RankedTensorType>(expr->tensor.getType()).getRank() != 0 ||
        !isa<IntegerType, IndexType>(expr->type))
      return failure();
    form.symbols[expr->tensor] = 1.0;
    return form;
  case Expr::Kind::Op:
    break;
  default:
    return failure();
  }
  Operation *op = expr->op;
  if (isa<arith::IndexCastOp, arith::IndexCastUIOp, arith::ExtSIOp,
          arith::ExtUIOp, arith::TruncIOp, arith::SIToFPOp, arith::UIToFPOp,
          arith::ExtFOp, arith::TruncFOp>(op))
    return linearize(table, expr->operands[0]);
  if (isa<arith::NegFOp>(op)) {
    FailureOr<LinearForm> inner = linearize(table, expr->operands[0]);
    if (failed(inner))
      return failure();
    form.add(*inner, -1.0);
    return form;
  }
  if (!isa<arith::AddIOp, arith::AddFOp, arith::SubIOp, arith::SubFOp,
           arith::MulIOp, arith::MulFOp>(op))
    return failure();
  FailureOr<LinearForm> lhs = linearize(table, expr->operands[0]);
  FailureOr<LinearForm> rhs = linearize(table, expr->operands[1]);
  if (failed(lhs) || failed(rhs))
    return failure();
  if (isa<arith::AddIOp, arith::AddFOp>(op)) {
    form.add(*lhs, 1.0);
    form.add(*rhs, 1.0);
  } else if (isa<arith::SubIOp, arith::SubFOp>(op)) {
    form.add(*lhs, 1.0);
    form.add(*rhs, -1.0);
  } else if (lhs->isConstant()) {
    form.add(*rhs, lhs->constant);
  } else if (rhs->isConstant()) {
    form.add(*lhs, rhs->constant);
  } else {
    return failure();
  }
  return form;
}

//===----------------------------------------------------------------------===//
// Gathers by position
//===----------------------------------------------------------------------===//

/// The state of one tensor.generate body being read.
struct ExprBuilder::GatherContext {
  tensor::GenerateOp op;
  const Layout &layout;
  unsigned depth;
  llvm::DenseMap<Value, Expr *> cache;
};

namespace {
/// A symbol of an index polynomial: the size of a tensor dimension (the
/// tensor and the dimension), or a scalar value (the value and -1).
using Symbol = std::pair<void *, int64_t>;
/// A monomial: an atom's index (or none) times symbols, in a fixed order.
using Monomial = std::pair<AtomId, std::vector<Symbol>>;
/// An integer polynomial, affine in the atoms: the index a gather computes,
/// such as batch * len(attention_mask) + token.
using Poly = std::map<Monomial, int64_t>;
} // namespace

static constexpr AtomId kNoAtom = ~0u;

/// The canonical symbol of the size of dimension `dim` of `tensor`: sizes
/// are followed to the tensor they were taken from.
static Symbol sizeSymbol(Value tensor, int64_t dim) {
  Value size = getSizeValue(tensor, dim);
  auto dimOp = size ? size.getDefiningOp<tensor::DimOp>() : tensor::DimOp();
  if (std::optional<int64_t> index =
          dimOp ? dimOp.getConstantIndex() : std::nullopt)
    return sizeSymbol(dimOp.getSource(), *index);
  if (size)
    return {size.getAsOpaquePointer(), -1};
  return {tensor.getAsOpaquePointer(), dim};
}

static Symbol valueSymbol(Value value) {
  auto dimOp = value.getDefiningOp<tensor::DimOp>();
  if (std::optional<int64_t> index =
          dimOp ? dimOp.getConstantIndex() : std::nullopt)
    return sizeSymbol(dimOp.getSource(), *index);
  return {value.getAsOpaquePointer(), -1};
}

static void addTo(Poly &to, const Poly &from, int64_t factor) {
  for (const auto &[monomial, coefficient] : from)
    if (int64_t sum = (to[monomial] += factor * coefficient); sum == 0)
      to.erase(monomial);
}

static Poly constantPoly(int64_t value) {
  Poly poly;
  if (value != 0)
    poly[{kNoAtom, {}}] = value;
  return poly;
}

static FailureOr<Poly> multiply(const Poly &a, const Poly &b) {
  Poly product;
  for (const auto &[x, cx] : a) {
    for (const auto &[y, cy] : b) {
      if (x.first != kNoAtom && y.first != kNoAtom)
        return failure();
      std::vector<Symbol> symbols = x.second;
      llvm::append_range(symbols, y.second);
      llvm::sort(symbols);
      addTo(product,
            Poly{{{x.first != kNoAtom ? x.first : y.first, symbols}, 1}},
            cx * cy);
    }
  }
  return product;
}

static FailureOr<Poly> fromLinearForm(const LinearForm &form) {
  Poly poly;
  auto integral = [](double x) { return x == std::round(x); };
  if (!integral(form.constant))
    return failure();
  poly = constantPoly(int64_t(form.constant));
  for (auto [atom, coefficient] : form.atoms)
    if (coefficient != 0.0) {
      if (!integral(coefficient))
        return failure();
      addTo(poly, Poly{{{atom, {}}, 1}}, int64_t(coefficient));
    }
  for (auto [symbol, coefficient] : form.symbols)
    if (coefficient != 0.0) {
      if (!integral(coefficient))
        return failure();
      addTo(poly, Poly{{{kNoAtom, {valueSymbol(symbol)}}, 1}},
            int64_t(coefficient));
    }
  return poly;
}

/// Whether `poly` is never negative: non-negative multiples of indices and
/// tensor sizes.
static bool isNonNegative(const Poly &poly) {
  return llvm::all_of(poly, [](const auto &term) {
    return term.second > 0 &&
           llvm::all_of(term.first.second, [](const Symbol &symbol) {
             return symbol.second >= 0;
           });
  });
}

static FailureOr<Poly> indexPoly(const AtomTable &table, Expr *expr) {
  switch (expr->kind) {
  case Expr::Kind::Constant: {
    auto attr = dyn_cast<IntegerAttr>(expr->constant);
    if (!attr)
      return failure();
    return constantPoly(attr.getValue().getSExtValue());
  }
  case Expr::Kind::Index:
  case Expr::Kind::Scalar: {
    FailureOr<LinearForm> form = linearize(table, expr);
    if (failed(form))
      return failure();
    return fromLinearForm(*form);
  }
  case Expr::Kind::Read:
    // A 0-d tensor: a scalar.
    if (cast<RankedTensorType>(expr->tensor.getType()).getRank() != 0 ||
        !isa<IntegerType, IndexType>(expr->type))
      return failure();
    return Poly{{{kNoAtom, {{expr->tensor.getAsOpaquePointer(), -1}}}, 1}};
  case Expr::Kind::Op:
    break;
  default:
    return failure();
  }
  Operation *op = expr->op;
  if (isa<arith::IndexCastOp, arith::IndexCastUIOp, arith::ExtSIOp,
          arith::ExtUIOp, arith::TruncIOp>(op))
    return indexPoly(table, expr->operands[0]);
  if (auto select = dyn_cast<arith::SelectOp>(op)) {
    // The wrap of a negative index, select(i < 0, i + n, i), is i when i
    // is never negative.
    Expr *condition = expr->operands[0], *wrapped = expr->operands[1];
    Expr *plain = expr->operands[2];
    auto cmp = condition->is(Expr::Kind::Op)
                   ? dyn_cast<arith::CmpIOp>(condition->op)
                   : arith::CmpIOp();
    FailureOr<Poly> poly = indexPoly(table, plain);
    if (!cmp || cmp.getPredicate() != arith::CmpIPredicate::slt ||
        condition->operands[0] != plain ||
        constantValue(condition->operands[1]) != 0.0 ||
        !wrapped->is(Expr::Kind::Op) || !isa<arith::AddIOp>(wrapped->op) ||
        !llvm::is_contained(wrapped->operands, plain) || failed(poly) ||
        !isNonNegative(*poly))
      return failure();
    return poly;
  }
  if (!isa<arith::AddIOp, arith::SubIOp, arith::MulIOp>(op))
    return failure();
  FailureOr<Poly> lhs = indexPoly(table, expr->operands[0]);
  FailureOr<Poly> rhs = indexPoly(table, expr->operands[1]);
  if (failed(lhs) || failed(rhs))
    return failure();
  if (isa<arith::MulIOp>(op))
    return multiply(*lhs, *rhs);
  addTo(*lhs, *rhs, isa<arith::AddIOp>(op) ? 1 : -1);
  return lhs;
}

/// The atoms `poly` is the row-major index of: no constant, no symbol, and
/// coefficients that are the strides of its atoms.
static FailureOr<AtomList> indexAtoms(const AtomTable &table,
                                      const Poly &poly) {
  SmallVector<std::pair<int64_t, AtomId>> terms;
  for (const auto &[monomial, coefficient] : poly) {
    if (monomial.first == kNoAtom || !monomial.second.empty())
      return failure();
    terms.push_back({coefficient, monomial.first});
  }
  llvm::sort(terms);
  AtomList atoms;
  int64_t stride = 1;
  for (auto [coefficient, atom] : terms) {
    if (coefficient != stride || (!atoms.empty() && table.isDynamic(atoms[0])))
      return failure();
    atoms.insert(atoms.begin(), atom);
    if (!table.isDynamic(atom))
      stride *= table.getSize(atom);
  }
  return atoms;
}

/// The row-major strides of `shape` (the dimensions of `tensor`) as
/// polynomials of its sizes.
static SmallVector<Poly> stridesOf(Value tensor, ArrayRef<int64_t> shape) {
  SmallVector<Poly> strides(shape.size());
  Poly stride = constantPoly(1);
  for (int64_t dim = shape.size() - 1; dim >= 0; --dim) {
    strides[dim] = stride;
    Poly size = ShapedType::isDynamic(shape[dim])
                    ? Poly{{{kNoAtom, {sizeSymbol(tensor, dim)}}, 1}}
                    : constantPoly(shape[dim]);
    stride = *multiply(stride, size);
  }
  return strides;
}

/// Splits the flat index `flat` of a row-major tensor with `strides` into
/// one index per dimension: each term goes to the outermost dimension whose
/// stride divides it. The split is the only one when every part is within
/// its dimension, which the caller checks.
static FailureOr<SmallVector<Poly>> unflatten(const Poly &flat,
                                              ArrayRef<Poly> strides) {
  SmallVector<Poly> parts(strides.size());
  for (const auto &[monomial, coefficient] : flat) {
    bool placed = false;
    for (auto [dim, stride] : llvm::enumerate(strides)) {
      if (stride.size() != 1)
        return failure();
      const auto &[strideMonomial, strideFactor] = *stride.begin();
      if (strideFactor <= 0)
        return failure();
      std::vector<Symbol> rest = monomial.second;
      bool divides = coefficient % strideFactor == 0;
      for (const Symbol &symbol : strideMonomial.second) {
        auto it = llvm::find(rest, symbol);
        if (it == rest.end()) {
          divides = false;
          break;
        }
        rest.erase(it);
      }
      if (!divides)
        continue;
      addTo(parts[dim], Poly{{{monomial.first, rest}, 1}},
            coefficient / strideFactor);
      placed = true;
      break;
    }
    if (!placed)
      return failure();
  }
  return parts;
}

FailureOr<Expr *> ExprBuilder::readGather(Operation *op, const Layout &layout,
                                          unsigned depth) {
  auto generate = cast<tensor::GenerateOp>(op);
  GatherContext context{generate, layout, depth,
                        llvm::DenseMap<Value, Expr *>()};
  Value yielded = generate.getBody().front().getTerminator()->getOperand(0);
  return gatherExpr(yielded, context);
}

FailureOr<Expr *> ExprBuilder::gatherExpr(Value value, GatherContext &context) {
  if (auto it = context.cache.find(value); it != context.cache.end())
    return it->second;
  Region &body = context.op.getBody();
  FailureOr<Expr *> result = failure();
  Attribute constant;
  if (auto arg = dyn_cast<BlockArgument>(value);
      arg && arg.getParentRegion() == &body) {
    Expr *expr = create(Expr::Kind::Index, arg.getType());
    expr->atoms = context.layout[arg.getArgNumber()];
    result = expr;
  } else if (matchPattern(value, m_Constant(&constant)) &&
             isa<TypedAttr>(constant)) {
    result = makeConstant(constant);
  } else if (!body.isAncestor(value.getParentRegion())) {
    // Captured from above the generate.
    Expr *expr = create(Expr::Kind::Scalar, value.getType());
    expr->scalar = value;
    result = expr;
  } else if (auto extract = value.getDefiningOp<tensor::ExtractOp>()) {
    // source[i, j, ...] with every index the index of some atoms, or a
    // row-major reshape of a tensor read at such indices.
    Value source = extract.getTensor();
    SmallVector<Poly> indices;
    for (Value index : extract.getIndices()) {
      FailureOr<Expr *> indexExpr = gatherExpr(index, context);
      FailureOr<Poly> poly = succeeded(indexExpr) ? indexPoly(table, *indexExpr)
                                                  : FailureOr<Poly>(failure());
      if (failed(poly))
        return fail(context.op, "gather at an index that is not a position");
      indices.push_back(std::move(*poly));
    }
    bool throughReshape = false;
    if (auto reshape = source.getDefiningOp<tensor::ReshapeOp>();
        reshape && llvm::any_of(indices, [&](const Poly &poly) {
          return failed(indexAtoms(table, poly));
        })) {
      Poly flat;
      ArrayRef<int64_t> shape = reshape.getResultType().getShape();
      for (auto [poly, stride] :
           llvm::zip(indices, stridesOf(reshape.getResult(), shape))) {
        FailureOr<Poly> term = multiply(poly, stride);
        if (failed(term))
          return fail(context.op, "gather at an index that is not a position");
        addTo(flat, *term, 1);
      }
      source = reshape.getSource();
      auto sourceShape = cast<RankedTensorType>(source.getType()).getShape();
      FailureOr<SmallVector<Poly>> parts =
          unflatten(flat, stridesOf(source, sourceShape));
      if (failed(parts))
        return fail(context.op, "gather at an index that is not a position");
      indices = std::move(*parts);
      throughReshape = true;
    }
    RankedTensorType sourceType = cast<RankedTensorType>(source.getType());
    Layout sourceLayout;
    bool assumed = false;
    for (auto [dim, poly] : llvm::enumerate(indices)) {
      FailureOr<AtomList> atoms = indexAtoms(table, poly);
      int64_t size = sourceType.getDimSize(dim);
      if (failed(atoms) || table.getSize(*atoms) != size)
        return fail(context.op, "gather at an index that is not a position");
      Value index = throughReshape ? Value() : extract.getIndices()[dim];
      // Indices below a dynamic size of the generate read a prefix of the
      // source, taken to be all of it unless the generate has the source's
      // size there.
      if (ShapedType::isDynamic(size)) {
        Value extent;
        if (auto arg = dyn_cast_if_present<BlockArgument>(index))
          extent = getSizeValue(context.op.getResult(), arg.getArgNumber());
        auto sizeOf =
            extent ? extent.getDefiningOp<tensor::DimOp>() : tensor::DimOp();
        bool sameSize = extent && (extent == getSizeValue(source, dim) ||
                                   (sizeOf && sizeOf.getSource() == source &&
                                    sizeOf.getConstantIndex() == int64_t(dim)));
        assumed |= !sameSize;
      }
      sourceLayout.push_back(*atoms);
    }
    Operation *outerGather = prefixGather;
    if (assumed && !prefixGather)
      prefixGather = context.op;
    result = readImpl(source, sourceLayout, context.depth + 1);
    prefixGather = outerGather;
  } else if (Operation *def = value.getDefiningOp();
             def && isa_and_present<arith::ArithDialect>(def->getDialect()) &&
             def->getNumResults() == 1 && def->getNumRegions() == 0) {
    Expr *expr = create(Expr::Kind::Op, value.getType());
    expr->op = def;
    for (Value operand : def->getOperands()) {
      FailureOr<Expr *> sub = gatherExpr(operand, context);
      if (failed(sub))
        return failure();
      expr->operands.push_back(*sub);
    }
    result = expr;
  } else {
    return fail(context.op, "unsupported op in a gather");
  }
  if (succeeded(result))
    context.cache[value] = *result;
  return result;
}
