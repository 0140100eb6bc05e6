//===- AttentionCacheExtension.cpp - how attention extends its cache ------===//
//
// The keys (or values) an attention reads are the past ones, a function
// argument, extended by the new tokens: tensor.concat, two insert_slices
// into a tensor.empty, or an insert_slice into the past buffer (a
// dynamic-update-slice). The past token count may be dynamic with a concat.
//
//===----------------------------------------------------------------------===//

#include "AttentionMatcher.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

using namespace mlir;
using namespace mlir::kvc;

/// `value` as an argument of the enclosing function's entry block.
static BlockArgument asFunctionArgument(Value value) {
  auto arg = dyn_cast<BlockArgument>(value);
  if (!arg || !arg.getOwner()->isEntryBlock() ||
      !isa<FunctionOpInterface>(arg.getOwner()->getParentOp()))
    return {};
  return arg;
}

static bool isStatic4D(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  return tensor && tensor.getRank() == 4 && tensor.hasStaticShape();
}

/// The one dimension where `insert` writes a part of its destination, with
/// zero offsets, full sizes and unit strides elsewhere.
static std::optional<unsigned> insertedDim(tensor::InsertSliceOp insert) {
  RankedTensorType source = insert.getSourceType();
  RankedTensorType dest = insert.getDestType();
  if (!isStatic4D(source) || !isStatic4D(dest) ||
      !llvm::all_of(insert.getStaticStrides(),
                    [](int64_t stride) { return stride == 1; }))
    return std::nullopt;
  std::optional<unsigned> dim;
  for (unsigned d = 0; d < 4; ++d) {
    if (source.getDimSize(d) == dest.getDimSize(d)) {
      std::optional<int64_t> offset =
          getConstantIntValue(insert.getMixedOffsets()[d]);
      if (!offset || *offset != 0)
        return std::nullopt;
      continue;
    }
    if (dim)
      return std::nullopt;
    dim = d;
  }
  if (!dim || (*dim != 1 && *dim != 2))
    return std::nullopt;
  return dim;
}

/// A rank-4 tensor; dynamic sizes are reported later, by the matcher.
static bool isRank4(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  return tensor && tensor.getRank() == 4;
}

std::optional<CacheExtension> mlir::kvc::matchCacheExtension(Value value) {
  if (!isRank4(value.getType()))
    return std::nullopt;
  CacheExtension ext;
  ext.op = value.getDefiningOp();
  if (auto concat = value.getDefiningOp<tensor::ConcatOp>()) {
    if (concat.getInputs().size() != 2 || concat.getDim() < 1 ||
        concat.getDim() > 2)
      return std::nullopt;
    ext.past = asFunctionArgument(concat.getInputs()[0]);
    if (!ext.past)
      return std::nullopt;
    ext.newTokens = concat.getInputs()[1];
    ext.tokenDim = concat.getDim();
    ext.concatenates = true;
    int64_t pastTokens =
        cast<RankedTensorType>(ext.past.getType()).getDimSize(ext.tokenDim);
    if (!ShapedType::isDynamic(pastTokens))
      ext.staticOffset = pastTokens;
  } else if (auto insert = value.getDefiningOp<tensor::InsertSliceOp>()) {
    std::optional<unsigned> dim = insertedDim(insert);
    if (!dim)
      return std::nullopt;
    ext.tokenDim = *dim;
    ext.newTokens = insert.getSource();
    OpFoldResult offset = insert.getMixedOffsets()[*dim];
    if (std::optional<int64_t> constant = getConstantIntValue(offset))
      ext.staticOffset = *constant;
    else
      ext.dynamicOffset = cast<Value>(offset);
    if ((ext.past = asFunctionArgument(insert.getDest()))) {
      // A dynamic-update-slice into the past buffer.
    } else if (auto first =
                   insert.getDest().getDefiningOp<tensor::InsertSliceOp>()) {
      // insert past into an empty tensor at 0, then the new tokens after.
      std::optional<unsigned> firstDim = insertedDim(first);
      ext.past = asFunctionArgument(first.getSource());
      std::optional<int64_t> firstOffset =
          getConstantIntValue(first.getMixedOffsets()[ext.tokenDim]);
      if (!ext.past || firstDim != dim || !firstOffset || *firstOffset != 0 ||
          !first.getDest().getDefiningOp<tensor::EmptyOp>() ||
          ext.staticOffset != first.getSourceType().getDimSize(ext.tokenDim))
        return std::nullopt;
    } else {
      return std::nullopt;
    }
  } else {
    return std::nullopt;
  }
  if (!isRank4(ext.past.getType()) || !isRank4(ext.newTokens.getType()))
    return std::nullopt;
  auto extType = cast<RankedTensorType>(value.getType());
  ext.newCount =
      cast<RankedTensorType>(ext.newTokens.getType()).getDimSize(ext.tokenDim);
  ext.extent = extType.getDimSize(ext.tokenDim);
  auto pastType = cast<RankedTensorType>(ext.past.getType());
  for (unsigned d = 0; d < 4; ++d)
    if (d != ext.tokenDim && pastType.getDimSize(d) != extType.getDimSize(d))
      return std::nullopt;
  return ext;
}
