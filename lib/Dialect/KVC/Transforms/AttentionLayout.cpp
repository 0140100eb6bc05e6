//===- AttentionLayout.cpp - index atoms of attention tensors -------------===//

#include "AttentionLayout.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/STLExtras.h"

#include <numeric>

using namespace mlir;
using namespace mlir::kvc;

//===----------------------------------------------------------------------===//
// AtomTable
//===----------------------------------------------------------------------===//

AtomId AtomTable::create(int64_t size) {
  assert((size > 1 || ShapedType::isDynamic(size)) &&
         "unit atoms are never created");
  AtomId id = atoms.size();
  atoms.push_back({size, id, {}});
  return id;
}

AtomList AtomTable::createDim(int64_t size) {
  if (size == 1)
    return {};
  return {create(size)};
}

AtomId AtomTable::find(AtomId atom) const {
  while (atoms[atom].parent != atom)
    atom = atoms[atom].parent;
  return atom;
}

int64_t AtomTable::getSize(AtomId atom) const { return atoms[atom].size; }

int64_t AtomTable::getSize(ArrayRef<AtomId> list) const {
  int64_t size = 1;
  for (AtomId atom : list) {
    if (isDynamic(atom))
      return ShapedType::kDynamic;
    size *= getSize(atom);
  }
  return size;
}

bool AtomTable::isDynamic(AtomId atom) const {
  return ShapedType::isDynamic(getSize(atom));
}

bool AtomTable::hasStaticStrides(ArrayRef<AtomId> list) const {
  AtomList all = leaves(list);
  return all.empty() ||
         llvm::none_of(ArrayRef<AtomId>(all).drop_front(),
                       [&](AtomId leaf) { return isDynamic(leaf); });
}

void AtomTable::appendLeaves(AtomId atom, AtomList &out) const {
  AtomId rep = find(atom);
  if (atoms[rep].children.empty()) {
    out.push_back(rep);
    return;
  }
  for (AtomId child : atoms[rep].children)
    appendLeaves(child, out);
}

AtomList AtomTable::leaves(ArrayRef<AtomId> list) const {
  AtomList out;
  for (AtomId atom : list)
    appendLeaves(atom, out);
  return out;
}

Layout AtomTable::leaves(const Layout &layout) const {
  Layout out;
  for (const AtomList &dim : layout)
    out.push_back(leaves(dim));
  return out;
}

AtomList AtomTable::flatLeaves(const Layout &layout) const {
  AtomList out;
  for (const AtomList &dim : layout)
    for (AtomId atom : dim)
      appendLeaves(atom, out);
  return out;
}

void AtomTable::split(AtomId atom, int64_t outer) {
  assert(find(atom) == atom && atoms[atom].children.empty());
  assert(!isDynamic(atom) && "dynamic atoms are never split");
  int64_t size = atoms[atom].size;
  assert(outer > 1 && size % outer == 0 && size / outer > 1);
  AtomId outerId = create(outer);
  AtomId innerId = create(size / outer);
  atoms[atom].children = {outerId, innerId};
}

FailureOr<SmallVector<AtomList>> AtomTable::regroup(ArrayRef<AtomId> list,
                                                    ArrayRef<int64_t> sizes) {
  AtomList pending = leaves(list);
  // A stack with the next leaf on top.
  SmallVector<AtomId> stack(pending.rbegin(), pending.rend());
  SmallVector<AtomList> groups;
  for (auto [index, size] : llvm::enumerate(sizes)) {
    AtomList group;
    if (ShapedType::isDynamic(size)) {
      // Static leaves up to and including one dynamic leaf.
      while (true) {
        if (stack.empty())
          return failure();
        AtomId leaf = stack.pop_back_val();
        group.push_back(leaf);
        if (isDynamic(leaf))
          break;
      }
      // The static leaves that follow go to the next group that is not a
      // unit; when that group is dynamic too, they could belong to either.
      auto next = llvm::find_if(sizes.drop_front(index + 1),
                                [](int64_t s) { return s != 1; });
      if (next == sizes.end()) {
        while (!stack.empty() && !isDynamic(stack.back()))
          group.push_back(stack.pop_back_val());
      } else if (ShapedType::isDynamic(*next) && !stack.empty() &&
                 !isDynamic(stack.back())) {
        return failure();
      }
      groups.push_back(std::move(group));
      continue;
    }
    if (size <= 0)
      return failure();
    int64_t product = 1;
    while (product < size) {
      if (stack.empty() || size % product != 0 || isDynamic(stack.back()))
        return failure();
      AtomId leaf = stack.pop_back_val();
      int64_t leafSize = getSize(leaf), need = size / product;
      if (need % leafSize == 0) {
        group.push_back(leaf);
        product *= leafSize;
        continue;
      }
      if (leafSize % need != 0)
        return failure();
      // The boundary falls inside the leaf: its outer part ends this group.
      split(leaf, need);
      group.push_back(atoms[leaf].children[0]);
      stack.push_back(atoms[leaf].children[1]);
      product = size;
    }
    if (product != size)
      return failure();
    groups.push_back(std::move(group));
  }
  if (!stack.empty())
    return failure();
  return groups;
}

LogicalResult AtomTable::unify(ArrayRef<AtomId> a, ArrayRef<AtomId> b) {
  if (getSize(a) != getSize(b))
    return failure();
  AtomList la = leaves(a), lb = leaves(b);
  SmallVector<AtomId> sa(la.rbegin(), la.rend()), sb(lb.rbegin(), lb.rend());
  // Unions and splits below may turn a stacked leaf into an inner node.
  auto settle = [&](SmallVector<AtomId> &stack) {
    while (!stack.empty()) {
      AtomId rep = find(stack.back());
      if (atoms[rep].children.empty()) {
        stack.back() = rep;
        return;
      }
      stack.pop_back();
      for (AtomId child : llvm::reverse(atoms[rep].children))
        stack.push_back(child);
    }
  };
  while (true) {
    settle(sa);
    settle(sb);
    if (sa.empty() || sb.empty())
      return success(sa.empty() && sb.empty());
    AtomId x = sa.back(), y = sb.back();
    if (x == y) {
      sa.pop_back();
      sb.pop_back();
      continue;
    }
    // A dynamic index is one leaf: it pairs with another dynamic leaf only.
    if (isDynamic(x) || isDynamic(y)) {
      if (!isDynamic(x) || !isDynamic(y))
        return failure();
      atoms[x].parent = y;
      sa.pop_back();
      sb.pop_back();
      continue;
    }
    int64_t sx = getSize(x), sy = getSize(y);
    if (sx == sy) {
      atoms[x].parent = y;
      sa.pop_back();
      sb.pop_back();
      continue;
    }
    // Split the larger leaf so that its outer part matches the smaller one.
    auto splitTop = [&](SmallVector<AtomId> &stack, AtomId leaf,
                        int64_t outer) -> LogicalResult {
      if (getSize(leaf) % outer != 0)
        return failure();
      split(leaf, outer);
      stack.pop_back();
      stack.push_back(atoms[leaf].children[1]);
      stack.push_back(atoms[leaf].children[0]);
      return success();
    };
    if (failed(sx > sy ? splitTop(sa, x, sy) : splitTop(sb, y, sx)))
      return failure();
  }
}

LogicalResult AtomTable::unify(const Layout &a, const Layout &b) {
  if (a.size() != b.size())
    return failure();
  for (auto [x, y] : llvm::zip(a, b))
    if (failed(unify(x, y)))
      return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// Layouts of operands and views
//===----------------------------------------------------------------------===//

FailureOr<Layout> mlir::kvc::layoutFromMap(const AtomTable &table,
                                           AffineMap map,
                                           ArrayRef<AtomList> loops,
                                           ArrayRef<int64_t> shape) {
  if (map.getNumResults() != shape.size() || map.getNumDims() != loops.size())
    return failure();
  Layout layout;
  for (auto [expr, size] : llvm::zip(map.getResults(), shape)) {
    // A dynamic dimension is one of dynamic atoms (and a static one of
    // static atoms): the sizes must agree, dynamic or not.
    if (auto dim = dyn_cast<AffineDimExpr>(expr)) {
      const AtomList &atoms = loops[dim.getPosition()];
      if (table.getSize(atoms) != size)
        return failure();
      layout.push_back(atoms);
      continue;
    }
    auto constant = dyn_cast<AffineConstantExpr>(expr);
    if (!constant || constant.getValue() != 0 || size != 1)
      return failure();
    layout.push_back({});
  }
  return layout;
}

FailureOr<Layout> mlir::kvc::loopsFromResult(AtomTable &table, AffineMap map,
                                             const Layout &layout,
                                             ArrayRef<int64_t> loopSizes,
                                             SmallVectorImpl<bool> *isFresh) {
  if (map.getNumResults() != layout.size() ||
      map.getNumDims() != loopSizes.size())
    return failure();
  SmallVector<std::optional<AtomList>> loops(loopSizes.size());
  for (auto [expr, atoms] : llvm::zip(map.getResults(), layout)) {
    if (auto dim = dyn_cast<AffineDimExpr>(expr)) {
      unsigned position = dim.getPosition();
      if (loops[position] || table.getSize(atoms) != loopSizes[position])
        return failure();
      loops[position] = atoms;
      continue;
    }
    auto constant = dyn_cast<AffineConstantExpr>(expr);
    if (!constant || constant.getValue() != 0 || !atoms.empty())
      return failure();
  }
  Layout result;
  if (isFresh)
    isFresh->clear();
  for (auto [loop, size] : llvm::zip(loops, loopSizes)) {
    if (isFresh)
      isFresh->push_back(!loop);
    if (loop) {
      result.push_back(*loop);
      continue;
    }
    if (!ShapedType::isDynamic(size) && size <= 0)
      return failure();
    result.push_back(table.createDim(size));
  }
  return result;
}

Layout mlir::kvc::mergeDims(const Layout &layout,
                            ArrayRef<SmallVector<int64_t, 2>> reassociation) {
  Layout merged;
  for (const auto &group : reassociation) {
    AtomList atoms;
    for (int64_t dim : group)
      llvm::append_range(atoms, layout[dim]);
    merged.push_back(std::move(atoms));
  }
  return merged;
}

FailureOr<Layout>
mlir::kvc::splitDims(AtomTable &table, const Layout &layout,
                     ArrayRef<SmallVector<int64_t, 2>> reassociation,
                     ArrayRef<int64_t> shape) {
  if (reassociation.size() != layout.size())
    return failure();
  Layout split;
  for (auto [group, atoms] : llvm::zip(reassociation, layout)) {
    SmallVector<int64_t> sizes;
    for (int64_t dim : group)
      sizes.push_back(shape[dim]);
    FailureOr<SmallVector<AtomList>> parts = table.regroup(atoms, sizes);
    if (failed(parts))
      return failure();
    llvm::append_range(split, *parts);
  }
  return split;
}

/// A linalg op that copies its one input, possibly transposed, broadcast or
/// (when `allowCasts`) converted to another float type.
static bool isCopyLike(linalg::LinalgOp op, bool allowCasts, bool &sawCast) {
  if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 1 ||
      op.getNumDpsInits() != 1 ||
      op.getNumParallelLoops() != op.getNumLoops() ||
      !isa<RankedTensorType>(op.getDpsInputOperand(0)->get().getType()))
    return false;
  Block *body = op.getBlock();
  if (!body)
    return false;
  Value yielded = body->getTerminator()->getOperand(0);
  while (auto *def = yielded.getDefiningOp()) {
    if (!allowCasts || !isa<arith::ExtFOp, arith::TruncFOp>(def))
      return false;
    sawCast = true;
    yielded = def->getOperand(0);
  }
  return yielded == body->getArgument(0);
}

Value mlir::kvc::skipViewsBackward(Value value, bool allowCasts) {
  while (Operation *op = value.getDefiningOp()) {
    bool sawCast = false;
    if (auto cast = dyn_cast<tensor::CastOp>(op))
      value = cast.getSource();
    else if (auto expand = dyn_cast<tensor::ExpandShapeOp>(op))
      value = expand.getSrc();
    else if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(op))
      value = collapse.getSrc();
    else if (allowCasts && isa<arith::ExtFOp, arith::TruncFOp>(op))
      value = op->getOperand(0);
    else if (auto linalgOp = dyn_cast<linalg::LinalgOp>(op);
             linalgOp && isCopyLike(linalgOp, allowCasts, sawCast))
      value = linalgOp.getDpsInputOperand(0)->get();
    else
      break;
  }
  return value;
}

FailureOr<ViewSource> mlir::kvc::traceViewsBackward(AtomTable &table,
                                                    Value value, Layout layout,
                                                    bool allowCasts,
                                                    std::string &error) {
  ViewSource source{value, std::move(layout), {}, false};
  auto fail = [&](Operation *op, StringRef why) {
    error = (op->getName().getStringRef() + ": " + why).str();
    return failure();
  };
  while (Operation *op = source.value.getDefiningOp()) {
    if (auto cast = dyn_cast<tensor::CastOp>(op)) {
      source.value = cast.getSource();
      continue;
    }
    if (auto expand = dyn_cast<tensor::ExpandShapeOp>(op)) {
      source.layout =
          mergeDims(source.layout, expand.getReassociationIndices());
      source.value = expand.getSrc();
      continue;
    }
    if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(op)) {
      RankedTensorType srcType = collapse.getSrcType();
      FailureOr<Layout> split =
          splitDims(table, source.layout, collapse.getReassociationIndices(),
                    srcType.getShape());
      if (failed(split))
        return fail(op, "reshape does not factor the dimensions");
      source.layout = *split;
      source.value = collapse.getSrc();
      continue;
    }
    if (allowCasts && isa<arith::ExtFOp, arith::TruncFOp>(op)) {
      source.value = op->getOperand(0);
      source.sawCast = true;
      continue;
    }
    auto linalgOp = dyn_cast<linalg::LinalgOp>(op);
    bool sawCast = false;
    if (!linalgOp || !isCopyLike(linalgOp, allowCasts, sawCast))
      break;
    SmallVector<int64_t> loopSizes = linalgOp.getStaticLoopRanges();
    AffineMap outMap = linalgOp.getIndexingMapMatchingResult(
        cast<OpResult>(source.value));
    FailureOr<Layout> loops =
        loopsFromResult(table, outMap, source.layout, loopSizes);
    OpOperand *input = linalgOp.getDpsInputOperand(0);
    AffineMap inMap = linalgOp.getMatchingIndexingMap(input);
    if (failed(loops) || !inMap.isProjectedPermutation(/*allowZeroInResults=*/true))
      return fail(op, "unsupported indexing maps");
    auto inType = cast<RankedTensorType>(input->get().getType());
    FailureOr<Layout> inLayout =
        layoutFromMap(table, inMap, *loops, inType.getShape());
    if (failed(inLayout))
      return fail(op, "unsupported indexing maps");
    for (unsigned loop = 0, e = loops->size(); loop < e; ++loop)
      if (!inMap.isFunctionOfDim(loop))
        llvm::append_range(source.broadcastAtoms, (*loops)[loop]);
    source.sawCast |= sawCast;
    source.layout = *inLayout;
    source.value = input->get();
  }
  return source;
}

//===----------------------------------------------------------------------===//
// Emitting layout conversions
//===----------------------------------------------------------------------===//

static RankedTensorType typeOfLayout(const AtomTable &table,
                                     const Layout &layout, Type elementType) {
  SmallVector<int64_t> shape;
  for (const AtomList &dim : layout)
    shape.push_back(table.getSize(dim));
  return RankedTensorType::get(shape, elementType);
}

/// For each dim of `layout` (leaves), the coarse group of `groupEnds`
/// (ascending leaf positions ending each group) it belongs to. A unit dim
/// joins the group of the next dim that has leaves, or the last group.
static SmallVector<ReassociationIndices>
groupDims(const Layout &layout, ArrayRef<size_t> groupEnds) {
  SmallVector<ReassociationIndices> groups(groupEnds.size());
  SmallVector<int64_t> pendingUnits;
  size_t position = 0, group = 0;
  for (auto [index, dim] : llvm::enumerate(layout)) {
    if (dim.empty()) {
      pendingUnits.push_back(index);
      continue;
    }
    while (groupEnds[group] <= position)
      ++group;
    llvm::append_range(groups[group], pendingUnits);
    pendingUnits.clear();
    groups[group].push_back(index);
    position += dim.size();
  }
  if (!groups.empty())
    llvm::append_range(groups.back(), pendingUnits);
  return groups;
}

/// Reshapes `value` from `from` to `to`, two groupings of the same leaves
/// in the same order: a collapse to their common coarsening, then an
/// expand, each skipped when it would do nothing.
static Value reshape(OpBuilder &builder, Location loc, const AtomTable &table,
                     Value value, const Layout &from, const Layout &to) {
  if (from == to)
    return value;
  Type elementType = cast<RankedTensorType>(value.getType()).getElementType();
  auto ends = [](const Layout &layout) {
    llvm::SmallDenseSet<size_t> result;
    size_t position = 0;
    for (const AtomList &dim : layout) {
      position += dim.size();
      if (!dim.empty())
        result.insert(position);
    }
    return result;
  };
  llvm::SmallDenseSet<size_t> fromEnds = ends(from), toEnds = ends(to);
  SmallVector<size_t> common;
  for (size_t end : fromEnds)
    if (toEnds.contains(end))
      common.push_back(end);
  llvm::sort(common);
  Layout coarse;
  size_t begin = 0;
  AtomList all = table.flatLeaves(from);
  for (size_t end : common) {
    coarse.push_back(AtomList(all.begin() + begin, all.begin() + end));
    begin = end;
  }
  if (coarse != from)
    value = tensor::CollapseShapeOp::create(
        builder, loc, typeOfLayout(table, coarse, elementType), value,
        groupDims(from, common));
  if (coarse != to)
    value = tensor::ExpandShapeOp::create(
        builder, loc, typeOfLayout(table, to, elementType), value,
        groupDims(to, common));
  return value;
}

Value mlir::kvc::convertLayout(OpBuilder &builder, Location loc,
                               const AtomTable &table, Value value,
                               const Layout &from, const Layout &to) {
  Layout source = table.leaves(from), target = table.leaves(to);
  AtomList sourceFlat = table.flatLeaves(source);
  AtomList targetFlat = table.flatLeaves(target);
  assert(sourceFlat.size() == targetFlat.size() && "layouts differ in atoms");
  if (sourceFlat == targetFlat)
    return reshape(builder, loc, table, value, source, target);

  // Leaves that stay together in both orders move as one block.
  SmallVector<AtomList> blocks;
  for (auto [index, leaf] : llvm::enumerate(sourceFlat)) {
    auto at = llvm::find(targetFlat, leaf);
    if (index > 0 && at != targetFlat.begin() &&
        *std::prev(at) == sourceFlat[index - 1]) {
      blocks.back().push_back(leaf);
      continue;
    }
    blocks.push_back({leaf});
  }
  auto blockOf = [&](AtomId leaf) {
    return llvm::find_if(blocks, [&](const AtomList &block) {
             return block.front() == leaf;
           }) -
           blocks.begin();
  };
  // `layout` with one dimension per block, keeping its unit dimensions
  // (all of them, or none when `keepUnits` is false).
  auto blockForm = [&](const Layout &layout, bool keepUnits) {
    Layout form;
    for (const AtomList &dim : layout) {
      if (dim.empty() && keepUnits)
        form.push_back({});
      for (AtomId leaf : dim)
        if (size_t index = blockOf(leaf); index < blocks.size())
          form.push_back(blocks[index]);
    }
    return form;
  };
  auto countUnits = [](const Layout &layout) {
    return llvm::count_if(layout, [](const AtomList &d) { return d.empty(); });
  };
  bool keepUnits = countUnits(source) == countUnits(target);
  Layout sourceBlocks = blockForm(source, keepUnits);
  Layout targetBlocks = blockForm(target, keepUnits);
  Value blocked = reshape(builder, loc, table, value, source, sourceBlocks);

  // Unit dimensions pair up in order; blocks by identity.
  SmallVector<int64_t> permutation, shape;
  SmallVector<int64_t> sourceUnits;
  for (auto [index, dim] : llvm::enumerate(sourceBlocks))
    if (dim.empty())
      sourceUnits.push_back(index);
  unsigned nextUnit = 0;
  for (const AtomList &dim : targetBlocks) {
    if (dim.empty())
      permutation.push_back(sourceUnits[nextUnit++]);
    else
      permutation.push_back(llvm::find(sourceBlocks, dim) -
                            sourceBlocks.begin());
    shape.push_back(table.getSize(dim));
  }
  Type elementType = cast<RankedTensorType>(value.getType()).getElementType();
  SmallVector<Value> dynamicSizes;
  for (auto [size, from] : llvm::zip(shape, permutation))
    if (ShapedType::isDynamic(size))
      dynamicSizes.push_back(
          tensor::DimOp::create(builder, loc, blocked, from).getResult());
  Value init =
      tensor::EmptyOp::create(builder, loc, shape, elementType, dynamicSizes);
  Value moved =
      linalg::TransposeOp::create(builder, loc, blocked, init, permutation)
          ->getResult(0);
  return reshape(builder, loc, table, moved, targetBlocks, target);
}

AffineExpr mlir::kvc::linearizeAtoms(
    const AtomTable &table, ArrayRef<AtomId> atoms,
    function_ref<std::optional<unsigned>(AtomId)> loopOf,
    MLIRContext *context) {
  if (!table.hasStaticStrides(atoms))
    return AffineExpr();
  AffineExpr expr = getAffineConstantExpr(0, context);
  int64_t stride = 1;
  for (AtomId leaf : llvm::reverse(table.leaves(atoms))) {
    std::optional<unsigned> loop = loopOf(leaf);
    if (!loop)
      return AffineExpr();
    expr = expr + getAffineDimExpr(*loop, context) * stride;
    if (!table.isDynamic(leaf))
      stride *= table.getSize(leaf);
  }
  return expr;
}
