//===- AttentionExpr.cpp - scalar view of elementwise tensor chains -------===//

#include "AttentionExpr.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/ScopeExit.h"

using namespace mlir;
using namespace mlir::kvc;

StringRef Expr::opName() const {
  return op ? op->getName().getStringRef() : StringRef();
}

Expr *ExprBuilder::create(Expr::Kind kind, Type type) {
  nodes.push_back(Expr{kind, type, {}, {}, {}, {}, {}, nullptr, {}});
  return &nodes.back();
}

Expr *ExprBuilder::makeConstant(Attribute value) {
  Expr *expr = create(Expr::Kind::Constant, cast<TypedAttr>(value).getType());
  expr->constant = value;
  return expr;
}

FailureOr<Expr *> ExprBuilder::fail(Operation *op, const Twine &message) {
  if (error.empty()) {
    error = message.str();
    errorOp = op;
  }
  return failure();
}

FailureOr<Expr *> ExprBuilder::read(Value tensor, const Layout &layout) {
  return readImpl(tensor, layout, 0);
}

/// An op that only moves elements around (transpose, broadcast, copy).
static bool isPureMove(linalg::LinalgOp op) {
  if (op.getNumDpsInputs() != 1 || op.getNumDpsInits() != 1 ||
      op.getNumParallelLoops() != op.getNumLoops() || !op.getBlock())
    return false;
  Block *body = op.getBlock();
  return body->getTerminator()->getOperand(0) == body->getArgument(0);
}

/// A scalar op the expression can hold and the mask emitter can clone.
static bool isScalarOp(Operation *op) {
  return isa_and_present<arith::ArithDialect, math::MathDialect>(
             op->getDialect()) &&
         op->getNumResults() == 1 && op->getNumRegions() == 0;
}

/// The dimension an integer constant counts 0, 1, 2, ... along, when all
/// its other dimensions are units.
static std::optional<unsigned> arangeDimOf(DenseElementsAttr dense) {
  auto type = cast<ShapedType>(dense.getType());
  if (!isa<IntegerType>(type.getElementType()) || !type.hasStaticShape())
    return std::nullopt;
  std::optional<unsigned> dim;
  for (auto [index, size] : llvm::enumerate(type.getShape())) {
    if (size == 1)
      continue;
    if (dim)
      return std::nullopt;
    dim = index;
  }
  if (!dim)
    return std::nullopt;
  for (auto [position, value] : llvm::enumerate(dense.getValues<APInt>()))
    if (value.getSExtValue() != int64_t(position))
      return std::nullopt;
  return dim;
}

FailureOr<Expr *> ExprBuilder::readImpl(Value tensor, const Layout &layout,
                                        unsigned depth) {
  Operation *def = tensor.getDefiningOp();
  if (budget == 0 || nesting >= kMaxNesting)
    return fail(def, "expression too large");
  --budget;
  ++nesting;
  llvm::scope_exit restoreNesting([&] { --nesting; });
  auto type = dyn_cast<RankedTensorType>(tensor.getType());
  if (!type)
    return fail(def, "unranked tensor");
  Type elementType = type.getElementType();

  std::vector<AtomId> key;
  for (const AtomList &dim : table.leaves(layout)) {
    key.insert(key.end(), dim.begin(), dim.end());
    key.push_back(~0u);
  }
  auto memoKey = std::make_pair(tensor.getAsOpaquePointer(), key);
  if (auto it = memo.find(memoKey); it != memo.end())
    return it->second;

  if (!prefixGather)
    for (auto [dim, atoms] : llvm::enumerate(layout)) {
      AtomList dimLeaves = table.leaves(atoms);
      if (type.isDynamicDim(dim) && dimLeaves.size() == 1)
        dynamicDims.push_back({dimLeaves[0], tensor, unsigned(dim)});
    }

  auto opaque = [&]() {
    Expr *expr = create(Expr::Kind::Read, elementType);
    expr->tensor = tensor;
    expr->layout = layout;
    if (prefixGather)
      assumedExtents[expr] = prefixGather;
    return expr;
  };
  FailureOr<Expr *> result = failure();
  if (tensor == scores) {
    Expr *expr = create(Expr::Kind::Score, elementType);
    expr->tensor = tensor;
    expr->layout = layout;
    result = expr;
  } else if (!def) {
    result = opaque();
  } else if (auto castOp = dyn_cast<tensor::CastOp>(def)) {
    result = readImpl(castOp.getSource(), layout, depth);
  } else if (auto expand = dyn_cast<tensor::ExpandShapeOp>(def)) {
    result = readImpl(expand.getSrc(),
                      mergeDims(layout, expand.getReassociationIndices()),
                      depth);
  } else if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(def)) {
    FailureOr<Layout> split =
        splitDims(table, layout, collapse.getReassociationIndices(),
                  collapse.getSrcType().getShape());
    result = succeeded(split) ? readImpl(collapse.getSrc(), *split, depth)
                              : FailureOr<Expr *>(opaque());
  } else if (auto constant = dyn_cast<arith::ConstantOp>(def)) {
    auto dense = dyn_cast<DenseElementsAttr>(constant.getValue());
    std::optional<unsigned> arangeDim =
        dense ? arangeDimOf(dense) : std::nullopt;
    if (dense && dense.isSplat()) {
      result = makeConstant(dense.getSplatValue<TypedAttr>());
    } else if (arangeDim) {
      // 0, 1, 2, ... along one dimension: its index (an ONNX Range).
      Expr *expr = create(Expr::Kind::Index, elementType);
      expr->atoms = layout[*arangeDim];
      result = expr;
    } else {
      result = opaque();
    }
  } else if (auto splat = dyn_cast<tensor::SplatOp>(def)) {
    Expr *expr = create(Expr::Kind::Scalar, elementType);
    expr->scalar = splat.getInput();
    result = expr;
  } else if (auto elements = dyn_cast<tensor::FromElementsOp>(def);
             elements && elements.getElements().size() == 1) {
    // A one-element tensor of a scalar (ONNX shape arithmetic).
    Expr *expr = create(Expr::Kind::Scalar, elementType);
    expr->scalar = elements.getElements()[0];
    result = expr;
  } else if (auto generate = dyn_cast<tensor::GenerateOp>(def);
             generate && !type.hasStaticShape() && depth < maxDepth) {
    // A gather over the dynamic token count, read through: otherwise the
    // mask would need its size, computed from the past keys. When it is
    // not one, the generate is read as it is.
    std::string savedError = error;
    Operation *savedErrorOp = errorOp;
    result = readGather(def, layout, depth);
    if (failed(result)) {
      error = savedError;
      errorOp = savedErrorOp;
      result = opaque();
    }
  } else if (auto softmax = dyn_cast<linalg::SoftmaxOp>(def)) {
    if (depth >= maxDepth) {
      result = opaque();
    } else {
      FailureOr<Expr *> input =
          readImpl(softmax.getInput(), layout, depth + 1);
      if (failed(input))
        return failure();
      Expr *expr = create(Expr::Kind::Softmax, elementType);
      expr->atoms = layout[softmax.getDimension()];
      expr->operands = {*input};
      result = expr;
    }
  } else if (auto linalgOp = dyn_cast<linalg::LinalgOp>(def)) {
    bool free = isPureMove(linalgOp);
    if (!free && depth >= maxDepth)
      result = opaque();
    else
      result = inlineLinalg(def, cast<OpResult>(tensor), layout,
                            free ? depth : depth + 1);
  } else if (def->hasTrait<OpTrait::Elementwise>() && isScalarOp(def) &&
             depth < maxDepth) {
    // arith/math applied to whole tensors.
    Expr *expr = create(Expr::Kind::Op, elementType);
    expr->op = def;
    for (Value operand : def->getOperands()) {
      if (!isa<RankedTensorType>(operand.getType()))
        return fail(def, "mixes tensors and scalars");
      FailureOr<Expr *> sub = readImpl(operand, layout, depth + 1);
      if (failed(sub))
        return failure();
      expr->operands.push_back(*sub);
    }
    result = expr;
  } else {
    result = opaque();
  }
  if (succeeded(result))
    memo[memoKey] = *result;
  return result;
}

/// The state of one inlined linalg body.
struct ExprBuilder::BodyContext {
  linalg::LinalgOp op;
  Layout loops;
  unsigned depth;
  unsigned resultIndex;
  bool reduces;
  Layout resultLayout;
  llvm::DenseMap<Value, Expr *> cache;
};

FailureOr<Expr *> ExprBuilder::inlineLinalg(Operation *op, OpResult result,
                                            const Layout &layout,
                                            unsigned depth) {
  auto linalgOp = cast<linalg::LinalgOp>(op);
  if (!linalgOp.hasPureTensorSemantics() || !linalgOp.getBlock())
    return fail(op, "not a linalg op on tensors");
  SmallVector<int64_t> loopSizes = linalgOp.getStaticLoopRanges();
  unsigned resultIndex = result.getResultNumber();
  AffineMap outMap =
      linalgOp.getMatchingIndexingMap(linalgOp.getDpsInitOperand(resultIndex));
  SmallVector<bool> isFresh;
  FailureOr<Layout> loops =
      outMap.isProjectedPermutation(/*allowZeroInResults=*/true)
          ? loopsFromResult(table, outMap, layout, loopSizes, &isFresh)
          : FailureOr<Layout>(failure());
  if (failed(loops))
    return fail(op, "unsupported result indexing map");
  SmallVector<utils::IteratorType> iterators =
      linalgOp.getIteratorTypesArray();
  AtomList reduced;
  for (auto [loop, fresh] : llvm::enumerate(isFresh)) {
    if (!fresh)
      continue;
    if (iterators[loop] != utils::IteratorType::reduction)
      return fail(op, "result does not index every parallel loop");
    llvm::append_range(reduced, (*loops)[loop]);
  }

  BodyContext context{linalgOp, *loops, depth, resultIndex,
                      !reduced.empty(), layout, llvm::DenseMap<Value, Expr *>()};
  Value yielded =
      linalgOp.getBlock()->getTerminator()->getOperand(resultIndex);
  FailureOr<Expr *> value = scalarExpr(yielded, context);
  if (failed(value))
    return failure();
  if (!context.reduces)
    return *value;

  // A reduction: the body must combine one new element with the
  // accumulator, which it uses nowhere else.
  Expr *combine = *value;
  auto isAccumulator = [](Expr *e) { return e->is(Expr::Kind::Accumulator); };
  if (!combine->is(Expr::Kind::Op) ||
      !isa<arith::AddFOp, arith::MaximumFOp, arith::MaxNumFOp>(combine->op) ||
      combine->operands.size() != 2 ||
      isAccumulator(combine->operands[0]) ==
          isAccumulator(combine->operands[1]))
    return fail(op, "reduction is not a sum or a max of its input");
  Expr *element = isAccumulator(combine->operands[0]) ? combine->operands[1]
                                                      : combine->operands[0];
  bool accumulatorElsewhere = false;
  walkExpr(element, [&](Expr *e) { accumulatorElsewhere |= isAccumulator(e); });
  if (accumulatorElsewhere)
    return fail(op, "reduction reads its accumulator twice");
  FailureOr<Expr *> init = readImpl(
      linalgOp.getDpsInitOperand(resultIndex)->get(), layout, depth);
  if (failed(init))
    return failure();
  Expr *reduce = create(Expr::Kind::Reduce, combine->type);
  reduce->op = combine->op;
  reduce->atoms = reduced;
  reduce->operands = {element, *init};
  return reduce;
}

FailureOr<Expr *> ExprBuilder::scalarExpr(Value value, BodyContext &context) {
  if (auto it = context.cache.find(value); it != context.cache.end())
    return it->second;
  linalg::LinalgOp op = context.op;
  Block *body = op.getBlock();
  FailureOr<Expr *> result = failure();

  auto scalarOperand = [&](Value scalar) -> Expr * {
    Attribute constant;
    if (matchPattern(scalar, m_Constant(&constant)) &&
        isa<TypedAttr>(constant))
      return makeConstant(constant);
    Expr *expr = create(Expr::Kind::Scalar, scalar.getType());
    expr->scalar = scalar;
    return expr;
  };

  if (auto arg = dyn_cast<BlockArgument>(value); arg && arg.getOwner() == body) {
    OpOperand *operand = op.getMatchingOpOperand(arg);
    Value source = operand->get();
    bool isInit = op.isDpsInit(operand);
    auto tensorType = dyn_cast<RankedTensorType>(source.getType());
    if (isInit && context.reduces) {
      if (operand->getOperandNumber() - op.getNumDpsInputs() !=
          context.resultIndex)
        return fail(op, "reduction reads another result's accumulator");
      result = create(Expr::Kind::Accumulator, arg.getType());
    } else if (!tensorType) {
      result = scalarOperand(source);
    } else {
      FailureOr<Layout> layout =
          layoutFromMap(table, op.getMatchingIndexingMap(operand),
                        context.loops, tensorType.getShape());
      if (failed(layout))
        return fail(op, "unsupported operand indexing map");
      result = readImpl(source, *layout, context.depth);
    }
  } else if (auto index = value.getDefiningOp<linalg::IndexOp>();
             index && index->getParentOp() == op.getOperation()) {
    Expr *expr = create(Expr::Kind::Index, value.getType());
    expr->atoms = context.loops[index.getDim()];
    result = expr;
  } else if (Operation *owner = value.getParentBlock()->getParentOp();
             owner != op.getOperation() && !op->isProperAncestor(owner)) {
    // Captured from above the linalg op.
    result = scalarOperand(value);
  } else {
    Operation *def = value.getDefiningOp();
    if (!def || !isScalarOp(def))
      return fail(def ? def : op.getOperation(),
                  "unsupported op in a linalg body");
    Attribute constant;
    if (matchPattern(value, m_Constant(&constant)) &&
        isa<TypedAttr>(constant)) {
      result = makeConstant(constant);
    } else {
      Expr *expr = create(Expr::Kind::Op, value.getType());
      expr->op = def;
      for (Value operand : def->getOperands()) {
        FailureOr<Expr *> sub = scalarExpr(operand, context);
        if (failed(sub))
          return failure();
        expr->operands.push_back(*sub);
      }
      result = expr;
    }
  }
  if (succeeded(result))
    context.cache[value] = *result;
  return result;
}

//===----------------------------------------------------------------------===//
// Queries
//===----------------------------------------------------------------------===//

Expr *mlir::kvc::stripCasts(Expr *expr) {
  while (expr->is(Expr::Kind::Op) &&
         isa<arith::ExtFOp, arith::TruncFOp>(expr->op))
    expr = expr->operands[0];
  return expr;
}

void mlir::kvc::walkExpr(Expr *expr, function_ref<void(Expr *)> fn) {
  llvm::DenseSet<Expr *> visited;
  SmallVector<Expr *> stack{expr};
  while (!stack.empty()) {
    Expr *node = stack.pop_back_val();
    if (!visited.insert(node).second)
      continue;
    fn(node);
    llvm::append_range(stack, node->operands);
  }
}

bool mlir::kvc::dependsOnScores(Expr *expr) {
  bool depends = false;
  walkExpr(expr, [&](Expr *e) { depends |= e->is(Expr::Kind::Score); });
  return depends;
}

namespace {
/// Structural comparison of two expressions with atom bindings.
struct ModuloMatcher {
  const AtomTable &table;
  llvm::DenseSet<AtomId> bindable;
  llvm::DenseMap<AtomId, AtomList> &binding;

  bool atomsMatch(ArrayRef<AtomId> a, ArrayRef<AtomId> b) {
    AtomList la = table.leaves(a), lb = table.leaves(b);
    size_t next = 0;
    for (AtomId leaf : la) {
      if (!bindable.contains(leaf)) {
        if (next >= lb.size() || lb[next] != leaf)
          return false;
        ++next;
        continue;
      }
      auto it = binding.find(leaf);
      if (it == binding.end()) {
        if (next >= lb.size() || table.getSize(lb[next]) != table.getSize(leaf))
          return false;
        binding[leaf] = {lb[next++]};
        continue;
      }
      for (AtomId bound : table.leaves(it->second)) {
        if (next >= lb.size() || lb[next] != bound)
          return false;
        ++next;
      }
    }
    return next == lb.size();
  }

  bool layoutsMatch(const Layout &a, const Layout &b) {
    if (a.size() != b.size())
      return false;
    for (auto [x, y] : llvm::zip(a, b))
      if (!atomsMatch(x, y))
        return false;
    return true;
  }

  bool match(Expr *a, Expr *b) {
    if (a == b)
      return true;
    if (a->kind != b->kind || a->type != b->type ||
        a->operands.size() != b->operands.size())
      return false;
    switch (a->kind) {
    case Expr::Kind::Constant:
      if (a->constant != b->constant)
        return false;
      break;
    case Expr::Kind::Scalar:
      if (a->scalar != b->scalar)
        return false;
      break;
    case Expr::Kind::Index:
      if (!atomsMatch(a->atoms, b->atoms))
        return false;
      break;
    case Expr::Kind::Score:
    case Expr::Kind::Read:
      if (a->tensor != b->tensor || !layoutsMatch(a->layout, b->layout))
        return false;
      break;
    case Expr::Kind::Op:
      if (a->op != b->op &&
          (a->op->getName() != b->op->getName() ||
           a->op->getAttrDictionary() != b->op->getAttrDictionary()))
        return false;
      break;
    case Expr::Kind::Reduce:
    case Expr::Kind::Softmax:
      if (a->op != b->op && a->is(Expr::Kind::Reduce) &&
          a->op->getName() != b->op->getName())
        return false;
      // The inner reduced atoms of `a` stand for those of `b`.
      for (AtomId leaf : table.leaves(a->atoms))
        bindable.insert(leaf);
      if (!atomsMatch(a->atoms, b->atoms))
        return false;
      break;
    case Expr::Kind::Accumulator:
      return false;
    }
    for (auto [x, y] : llvm::zip(a->operands, b->operands))
      if (!match(x, y))
        return false;
    return true;
  }
};
} // namespace

bool mlir::kvc::matchModulo(const AtomTable &table, Expr *a, Expr *b,
                            ArrayRef<AtomId> bindable,
                            llvm::DenseMap<AtomId, AtomList> &binding) {
  ModuloMatcher matcher{table, {}, binding};
  for (AtomId leaf : table.leaves(bindable))
    matcher.bindable.insert(leaf);
  return matcher.match(a, b);
}
