//===- UnstackCaches.cpp - one function argument per layer of a cache -----===//
//
// JAX models often keep the caches of all layers in one tensor
// [layers, B, H, S, D], update layer l with a dynamic_update_slice at
// [l, 0, 0, pos, 0] and read it back with a slice [l:l+1]. After conversion
// that is a chain of tensor.insert_slice on the stacked argument, read by
// tensor.extract_slice at static layer offsets, its end returned. This
// splits such an argument into one argument per layer (and the returned
// stack into one result per layer), so that each layer's cache is the
// rank-4 past-tensor + insert_slice form kvc-raise-attention matches.
//
//===----------------------------------------------------------------------===//

#include "Patterns.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/BitVector.h"

using namespace mlir;
using namespace mlir::kvc;
using namespace mlir::kvc::shlo;

namespace {

/// The slice's layer: its static dim-0 offset, with size and stride 1.
std::optional<int64_t> layerOf(OffsetSizeAndStrideOpInterface slice) {
  std::optional<int64_t> offset = getConstantIntValue(slice.getMixedOffsets()[0]);
  std::optional<int64_t> size = getConstantIntValue(slice.getMixedSizes()[0]);
  std::optional<int64_t> stride = getConstantIntValue(slice.getMixedStrides()[0]);
  if (!offset || size != 1 || stride != 1)
    return std::nullopt;
  return offset;
}

/// A stacked argument: the insert_slice chain from it and its reads.
struct Stack {
  BlockArgument arg;
  SmallVector<tensor::InsertSliceOp> inserts;
  SmallVector<tensor::ExtractSliceOp> extracts;
  std::optional<unsigned> resultIndex;
};

/// Follows the uses of `arg`: each version of the stack may be read by
/// extract_slices, extended by one insert_slice, or returned (the last one).
std::optional<Stack> matchStack(BlockArgument arg, Operation *ret) {
  auto type = dyn_cast<RankedTensorType>(arg.getType());
  if (!type || type.getRank() < 3 || !type.hasStaticShape() ||
      type.getDimSize(0) < 2)
    return std::nullopt;
  Stack stack{arg, {}, {}, std::nullopt};
  Value version = arg;
  while (version) {
    Value next;
    for (OpOperand &use : version.getUses()) {
      Operation *user = use.getOwner();
      if (user == ret) {
        if (stack.resultIndex || version == Value(arg))
          return std::nullopt;
        stack.resultIndex = use.getOperandNumber();
        continue;
      }
      if (user->getBlock() != arg.getOwner())
        return std::nullopt;
      if (auto extract = dyn_cast<tensor::ExtractSliceOp>(user)) {
        if (!layerOf(extract) ||
            extract.getSourceType().getRank() !=
                extract.getResultType().getRank())
          return std::nullopt;
        stack.extracts.push_back(extract);
        continue;
      }
      auto insert = dyn_cast<tensor::InsertSliceOp>(user);
      if (!insert || insert.getDest() != version || next || !layerOf(insert) ||
          insert.getSourceType().getRank() != type.getRank())
        return std::nullopt;
      stack.inserts.push_back(insert);
      next = insert.getResult();
    }
    if (next && stack.resultIndex)
      return std::nullopt;
    version = next;
  }
  if (stack.inserts.empty())
    return std::nullopt;
  return stack;
}

/// `value` without its leading unit dimension.
Value dropLeadingUnit(OpBuilder &builder, Location loc, Value value) {
  RankedTensorType type = tensorType(value);
  SmallVector<ReassociationIndices> groups = {{0, 1}};
  for (int64_t d = 2; d < type.getRank(); ++d)
    groups.push_back({d});
  auto target =
      RankedTensorType::get(type.getShape().drop_front(), type.getElementType());
  return tensor::CollapseShapeOp::create(builder, loc, target, value, groups);
}

/// `value` with a leading unit dimension, as `type`.
Value addLeadingUnit(OpBuilder &builder, Location loc, Value value,
                     RankedTensorType type) {
  SmallVector<ReassociationIndices> groups = {{0, 1}};
  for (int64_t d = 2; d < type.getRank(); ++d)
    groups.push_back({d});
  return tensor::ExpandShapeOp::create(builder, loc, type, value, groups);
}

/// The slice parameters without the layer dimension.
SmallVector<OpFoldResult> tail(ArrayRef<OpFoldResult> all) {
  return SmallVector<OpFoldResult>(all.drop_front());
}

void unstack(func::FuncOp func, Stack &stack) {
  auto type = cast<RankedTensorType>(stack.arg.getType());
  int64_t layers = type.getDimSize(0);
  auto layerType =
      RankedTensorType::get(type.getShape().drop_front(), type.getElementType());
  unsigned position = stack.arg.getArgNumber();
  SmallVector<unsigned> indices(layers, position + 1);
  SmallVector<Type> types(layers, layerType);
  SmallVector<DictionaryAttr> attrs(layers, DictionaryAttr());
  SmallVector<Location> locs(layers, stack.arg.getLoc());
  (void)func.insertArguments(indices, types, attrs, locs);
  SmallVector<Value> current;
  for (int64_t l = 0; l < layers; ++l)
    current.push_back(func.getArgument(position + 1 + l));

  // Versions of the stack in order: reads of version k see the layers as
  // they are after the k-th insert.
  llvm::DenseMap<Value, SmallVector<Value>> layersAt;
  layersAt[stack.arg] = current;
  for (tensor::InsertSliceOp insert : stack.inserts) {
    OpBuilder builder(insert);
    Location loc = insert.getLoc();
    int64_t l = *layerOf(insert);
    SmallVector<Value> next = layersAt.at(insert.getDest());
    Value source = dropLeadingUnit(builder, loc, insert.getSource());
    next[l] = tensor::InsertSliceOp::create(
        builder, loc, source, next[l], tail(insert.getMixedOffsets()),
        tail(insert.getMixedSizes()),
        tail(insert.getMixedStrides()));
    layersAt[insert.getResult()] = next;
  }
  for (tensor::ExtractSliceOp extract : stack.extracts) {
    OpBuilder builder(extract);
    Location loc = extract.getLoc();
    Value layer = layersAt.at(extract.getSource())[*layerOf(extract)];
    RankedTensorType resultType = extract.getResultType();
    auto slicedType = RankedTensorType::get(
        resultType.getShape().drop_front(), resultType.getElementType());
    Value sliced = layer;
    if (slicedType != layerType)
      sliced = tensor::ExtractSliceOp::create(
          builder, loc, slicedType, layer,
          tail(extract.getMixedOffsets()),
          tail(extract.getMixedSizes()),
          tail(extract.getMixedStrides()));
    extract.replaceAllUsesWith(
        addLeadingUnit(builder, loc, sliced, resultType));
    extract.erase();
  }

  // The returned stack becomes one result per layer, in its place.
  Operation *ret = func.getBody().front().getTerminator();
  if (stack.resultIndex) {
    unsigned index = *stack.resultIndex;
    SmallVector<Value> last = layersAt.at(stack.inserts.back().getResult());
    SmallVector<Value> operands(ret->getOperands());
    operands.erase(operands.begin() + index);
    operands.insert(operands.begin() + index, last.begin(), last.end());
    ret->setOperands(operands);
    SmallVector<DictionaryAttr> resultAttrs;
    func.getAllResultAttrs(resultAttrs);
    if (!resultAttrs.empty()) {
      resultAttrs.erase(resultAttrs.begin() + index);
      resultAttrs.insert(resultAttrs.begin() + index, layers,
                         DictionaryAttr::get(func.getContext()));
    }
    func.setType(FunctionType::get(func.getContext(), func.getArgumentTypes(),
                                   ret->getOperandTypes()));
    if (!resultAttrs.empty())
      func.setAllResultAttrs(resultAttrs);
  }
  for (tensor::InsertSliceOp insert : llvm::reverse(stack.inserts))
    insert.erase();
  llvm::BitVector erased(func.getNumArguments());
  erased.set(position);
  (void)func.eraseArguments(erased);
}

} // namespace

void shlo::unstackLayerArguments(func::FuncOp func) {
  if (func.isExternal() || !func.getBody().hasOneBlock())
    return;
  Operation *ret = func.getBody().front().getTerminator();
  if (!isa<func::ReturnOp>(ret))
    return;
  // Arguments shift as they are split: look them up again each time.
  bool changed = true;
  while (changed) {
    changed = false;
    for (BlockArgument arg : func.getArguments()) {
      std::optional<Stack> stack = matchStack(arg, ret);
      if (!stack)
        continue;
      unstack(func, *stack);
      changed = true;
      break;
    }
  }
}
