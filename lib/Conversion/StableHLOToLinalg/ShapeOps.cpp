//===- ShapeOps.cpp - StableHLO data movement ops to linalg/tensor --------===//
//
// broadcast_in_dim (a copy-like linalg.generic), transpose, reshape
// (collapse/expand_shape), slice, dynamic_slice, dynamic_update_slice
// (tensor.insert_slice: the cache-update form kvc-raise-attention matches)
// and concatenate (insert_slices into a tensor.empty).
//
//===----------------------------------------------------------------------===//

#include "Patterns.h"

#include "mlir/Dialect/Utils/IndexingUtils.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/IR/Matchers.h"

using namespace mlir;
using namespace mlir::kvc;
using namespace mlir::kvc::shlo;

namespace {

/// The start offset given by a 0-d integer tensor, clamped to [0, upper] as
/// StableHLO does; static when the tensor is a constant.
OpFoldResult clampedOffset(OpBuilder &builder, Location loc, Value start,
                           int64_t upper) {
  DenseIntElementsAttr constant;
  if (matchPattern(start, m_Constant(&constant)) && constant.isSplat()) {
    int64_t value = constant.getSplatValue<APInt>().getSExtValue();
    return builder.getIndexAttr(std::clamp<int64_t>(value, 0, upper));
  }
  return clampIndex(builder, loc, extractIndex(builder, loc, start), upper);
}

/// The operands from `first` on are 0-d integer tensors, one per dimension
/// of `rank`.
LogicalResult checkStartIndices(Operation *op, unsigned first,
                                int64_t rank) {
  if (op->getNumOperands() != first + rank)
    return op->emitError() << "expected " << rank << " start indices, got "
                           << int64_t(op->getNumOperands()) - first;
  for (Value start : op->getOperands().drop_front(first)) {
    RankedTensorType type = tensorType(start);
    if (type.getRank() != 0 || !isa<IntegerType>(type.getElementType()))
      return op->emitError() << "start index of type " << type
                             << " is not a 0-d integer tensor";
  }
  return success();
}

struct BroadcastInDimPattern : public StableHLOPattern {
  BroadcastInDimPattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.broadcast_in_dim", context,
                         {"broadcast_dimensions"}) {}

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() != 1 || op->getNumResults() != 1)
      return op->emitError("expected 1 operand and 1 result");
    FailureOr<DimList> dims = readDims(op, "broadcast_dimensions", true);
    if (failed(dims))
      return failure();
    RankedTensorType source = tensorType(op->getOperand(0));
    RankedTensorType result = tensorType(op->getResult(0));
    if (source.getElementType() != result.getElementType())
      return op->emitError("operand and result element types differ");
    if (int64_t(dims->size()) != source.getRank())
      return op->emitError() << "broadcast_dimensions has " << dims->size()
                             << " entries for an operand of rank "
                             << source.getRank();
    for (auto [i, dim] : llvm::enumerate(*dims)) {
      if (dim < 0 || dim >= result.getRank() ||
          llvm::count(*dims, dim) != 1)
        return op->emitError() << "broadcast dimension " << dim
                               << " is out of range or repeated";
      int64_t size = source.getDimSize(i);
      if (size != 1 && size != result.getDimSize(dim))
        return op->emitError() << "operand dimension " << i << " (size "
                               << size << ") cannot broadcast to size "
                               << result.getDimSize(dim);
    }
    return success();
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    DimList dims = *readDims(op, "broadcast_dimensions", true, false);
    RankedTensorType source = tensorType(operands[0]);
    RankedTensorType result = tensorType(op->getResult(0));
    // A broadcast constant stays a constant (JAX broadcasts every scalar).
    DenseElementsAttr constant;
    if (matchPattern(operands[0], m_Constant(&constant)) &&
        constant.isSplat()) {
      rewriter.replaceOpWithNewOp<arith::ConstantOp>(
          op, DenseElementsAttr::get(result,
                                     constant.getSplatValue<Attribute>()));
      return success();
    }
    if (source == result && llvm::equal(dims, llvm::seq<int64_t>(
                                                  0, result.getRank()))) {
      rewriter.replaceOp(op, operands[0]);
      return success();
    }
    MLIRContext *context = op->getContext();
    SmallVector<AffineExpr> exprs;
    for (auto [i, dim] : llvm::enumerate(dims))
      exprs.push_back(source.getDimSize(i) == 1 && result.getDimSize(dim) != 1
                          ? getAffineConstantExpr(0, context)
                          : getAffineDimExpr(dim, context));
    unsigned rank = result.getRank();
    SmallVector<AffineMap> maps = {
        AffineMap::get(rank, 0, exprs, context),
        AffineMap::getMultiDimIdentityMap(rank, context)};
    Location loc = op->getLoc();
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{result}, operands[0],
        createEmpty(rewriter, loc, result), maps,
        SmallVector<utils::IteratorType>(rank, utils::IteratorType::parallel),
        [](OpBuilder &b, Location bodyLoc, ValueRange args) {
          linalg::YieldOp::create(b, bodyLoc, args[0]);
        });
    rewriter.replaceOp(op, generic->getResults());
    return success();
  }
};

struct TransposePattern : public StableHLOPattern {
  TransposePattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.transpose", context, {"permutation"}) {}

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() != 1 || op->getNumResults() != 1)
      return op->emitError("expected 1 operand and 1 result");
    FailureOr<DimList> perm = readDims(op, "permutation", true);
    if (failed(perm))
      return failure();
    RankedTensorType source = tensorType(op->getOperand(0));
    RankedTensorType result = tensorType(op->getResult(0));
    if (!isPermutationVector(*perm) ||
        int64_t(perm->size()) != source.getRank())
      return op->emitError("permutation is not a permutation of the operand "
                           "dimensions");
    for (auto [i, dim] : llvm::enumerate(*perm))
      if (result.getDimSize(i) != source.getDimSize(dim))
        return op->emitError("result shape does not match the permutation");
    return success();
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    DimList perm = *readDims(op, "permutation", true, false);
    Location loc = op->getLoc();
    RankedTensorType result = tensorType(op->getResult(0));
    auto transpose = linalg::TransposeOp::create(
        rewriter, loc, operands[0], createEmpty(rewriter, loc, result), perm);
    rewriter.replaceOp(op, transpose->getResults());
    return success();
  }
};

struct ReshapePattern : public StableHLOPattern {
  ReshapePattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.reshape", context) {}

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() != 1 || op->getNumResults() != 1)
      return op->emitError("expected 1 operand and 1 result");
    RankedTensorType source = tensorType(op->getOperand(0));
    RankedTensorType result = tensorType(op->getResult(0));
    if (source.getNumElements() != result.getNumElements() ||
        source.getElementType() != result.getElementType())
      return op->emitError() << "cannot reshape " << source << " to "
                             << result;
    return success();
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op->getLoc();
    Value source = operands[0];
    RankedTensorType from = tensorType(source);
    RankedTensorType to = tensorType(op->getResult(0));
    if (from == to) {
      rewriter.replaceOp(op, source);
      return success();
    }
    if (from.getRank() > to.getRank()) {
      if (auto groups = getReassociationIndicesForCollapse(from.getShape(),
                                                           to.getShape())) {
        rewriter.replaceOpWithNewOp<tensor::CollapseShapeOp>(op, to, source,
                                                             *groups);
        return success();
      }
    } else if (from.getRank() < to.getRank()) {
      if (auto groups = getReassociationIndicesForCollapse(to.getShape(),
                                                           from.getShape())) {
        rewriter.replaceOpWithNewOp<tensor::ExpandShapeOp>(op, to, source,
                                                           *groups);
        return success();
      }
    }
    // No single collapse or expand does it: go through a flat tensor
    // (rank 0 when the tensors hold one element).
    auto flatShape = from.getNumElements() == 1
                         ? SmallVector<int64_t>()
                         : SmallVector<int64_t>{from.getNumElements()};
    auto flatType = RankedTensorType::get(flatShape, from.getElementType());
    auto allDims = [](int64_t rank) {
      ReassociationIndices group;
      for (int64_t d = 0; d < rank; ++d)
        group.push_back(d);
      return group;
    };
    SmallVector<ReassociationIndices> collapse, expand;
    if (!flatShape.empty()) {
      collapse.push_back(allDims(from.getRank()));
      expand.push_back(allDims(to.getRank()));
    }
    Value flat = from.getRank() == int64_t(flatShape.size())
                     ? source
                     : tensor::CollapseShapeOp::create(rewriter, loc, flatType,
                                                       source, collapse)
                           .getResult();
    if (to.getRank() == int64_t(flatShape.size())) {
      rewriter.replaceOp(op, flat);
      return success();
    }
    rewriter.replaceOpWithNewOp<tensor::ExpandShapeOp>(op, to, flat, expand);
    return success();
  }
};

struct SlicePattern : public StableHLOPattern {
  SlicePattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.slice", context,
                         {"start_indices", "limit_indices", "strides"}) {}

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() != 1 || op->getNumResults() != 1)
      return op->emitError("expected 1 operand and 1 result");
    FailureOr<DimList> starts = readDims(op, "start_indices", true);
    FailureOr<DimList> limits = readDims(op, "limit_indices", true);
    FailureOr<DimList> strides = readDims(op, "strides", false);
    if (failed(starts) || failed(limits) || failed(strides))
      return failure();
    RankedTensorType source = tensorType(op->getOperand(0));
    RankedTensorType result = tensorType(op->getResult(0));
    int64_t rank = source.getRank();
    if (int64_t(starts->size()) != rank || int64_t(limits->size()) != rank ||
        (!strides->empty() && int64_t(strides->size()) != rank))
      return op->emitError("slice indices do not have the operand's rank");
    for (int64_t d = 0; d < rank; ++d) {
      int64_t stride = strides->empty() ? 1 : (*strides)[d];
      int64_t start = (*starts)[d], limit = (*limits)[d];
      if (stride < 1 || start < 0 || limit < start ||
          limit > source.getDimSize(d) ||
          result.getDimSize(d) != (limit - start + stride - 1) / stride)
        return op->emitError() << "slice of dimension " << d << " ["
                               << start << ":" << limit << ":" << stride
                               << "] does not fit the operand or result";
    }
    return success();
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    DimList starts = *readDims(op, "start_indices", true, false);
    DimList strides = *readDims(op, "strides", false, false);
    RankedTensorType result = tensorType(op->getResult(0));
    if (strides.empty())
      strides.assign(result.getRank(), 1);
    rewriter.replaceOpWithNewOp<tensor::ExtractSliceOp>(
        op, result, operands[0], ValueRange{}, ValueRange{}, ValueRange{},
        starts, result.getShape(), strides);
    return success();
  }
};

struct DynamicSlicePattern : public StableHLOPattern {
  DynamicSlicePattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.dynamic_slice", context,
                         {"slice_sizes"}) {}

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() < 1 || op->getNumResults() != 1)
      return op->emitError("expected an operand and 1 result");
    RankedTensorType source = tensorType(op->getOperand(0));
    RankedTensorType result = tensorType(op->getResult(0));
    FailureOr<DimList> sizes = readDims(op, "slice_sizes", true);
    if (failed(sizes) || failed(checkStartIndices(op, 1, source.getRank())))
      return failure();
    if (ArrayRef<int64_t>(*sizes) != result.getShape())
      return op->emitError("slice_sizes do not match the result shape");
    for (int64_t d = 0; d < source.getRank(); ++d)
      if ((*sizes)[d] > source.getDimSize(d))
        return op->emitError() << "slice size " << (*sizes)[d]
                               << " exceeds dimension " << d;
    return success();
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op->getLoc();
    RankedTensorType source = tensorType(operands[0]);
    RankedTensorType result = tensorType(op->getResult(0));
    SmallVector<OpFoldResult> offsets, sizes, strides;
    for (int64_t d = 0; d < source.getRank(); ++d) {
      offsets.push_back(clampedOffset(
          rewriter, loc, operands[1 + d],
          source.getDimSize(d) - result.getDimSize(d)));
      sizes.push_back(rewriter.getIndexAttr(result.getDimSize(d)));
      strides.push_back(rewriter.getIndexAttr(1));
    }
    rewriter.replaceOpWithNewOp<tensor::ExtractSliceOp>(
        op, result, operands[0], offsets, sizes, strides);
    return success();
  }
};

struct DynamicUpdateSlicePattern : public StableHLOPattern {
  DynamicUpdateSlicePattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.dynamic_update_slice", context) {}

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() < 2 || op->getNumResults() != 1)
      return op->emitError("expected an operand, an update and 1 result");
    RankedTensorType dest = tensorType(op->getOperand(0));
    RankedTensorType update = tensorType(op->getOperand(1));
    if (failed(checkStartIndices(op, 2, dest.getRank())))
      return failure();
    if (update.getRank() != dest.getRank() ||
        update.getElementType() != dest.getElementType() ||
        op->getResult(0).getType() != dest)
      return op->emitError() << "update " << update
                             << " does not fit the operand " << dest;
    for (int64_t d = 0; d < dest.getRank(); ++d)
      if (update.getDimSize(d) > dest.getDimSize(d))
        return op->emitError() << "update dimension " << d
                               << " exceeds the operand's";
    return success();
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op->getLoc();
    RankedTensorType dest = tensorType(operands[0]);
    RankedTensorType update = tensorType(operands[1]);
    SmallVector<OpFoldResult> offsets, sizes, strides;
    for (int64_t d = 0; d < dest.getRank(); ++d) {
      offsets.push_back(clampedOffset(
          rewriter, loc, operands[2 + d],
          dest.getDimSize(d) - update.getDimSize(d)));
      sizes.push_back(rewriter.getIndexAttr(update.getDimSize(d)));
      strides.push_back(rewriter.getIndexAttr(1));
    }
    rewriter.replaceOpWithNewOp<tensor::InsertSliceOp>(
        op, operands[1], operands[0], offsets, sizes, strides);
    return success();
  }
};

struct ConcatenatePattern : public StableHLOPattern {
  ConcatenatePattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.concatenate", context, {"dimension"}) {}

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() < 1 || op->getNumResults() != 1)
      return op->emitError("expected operands and 1 result");
    FailureOr<int64_t> dim = readInteger(op, "dimension");
    if (failed(dim))
      return failure();
    RankedTensorType result = tensorType(op->getResult(0));
    if (*dim < 0 || *dim >= result.getRank())
      return op->emitError() << "dimension " << *dim << " is out of range";
    int64_t total = 0;
    for (Value operand : op->getOperands()) {
      RankedTensorType type = tensorType(operand);
      if (type.getRank() != result.getRank() ||
          type.getElementType() != result.getElementType())
        return op->emitError() << "operand " << type
                               << " does not match the result " << result;
      for (int64_t d = 0; d < result.getRank(); ++d)
        if (d != *dim && type.getDimSize(d) != result.getDimSize(d))
          return op->emitError() << "operand " << type
                                 << " does not match the result " << result;
      total += type.getDimSize(*dim);
    }
    if (total != result.getDimSize(*dim))
      return op->emitError("operand sizes do not add up to the result's");
    return success();
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    int64_t dim = *readInteger(op, "dimension", false);
    Location loc = op->getLoc();
    RankedTensorType result = tensorType(op->getResult(0));
    Value current = createEmpty(rewriter, loc, result);
    int64_t offset = 0;
    for (Value operand : operands) {
      RankedTensorType type = tensorType(operand);
      SmallVector<int64_t> offsets(result.getRank(), 0), ones(result.getRank(), 1);
      offsets[dim] = offset;
      current = tensor::InsertSliceOp::create(
          rewriter, loc, operand, current, ValueRange{}, ValueRange{},
          ValueRange{}, offsets, type.getShape(), ones);
      offset += type.getDimSize(dim);
    }
    rewriter.replaceOp(op, current);
    return success();
  }
};

} // namespace

void shlo::populateShapePatterns(RewritePatternSet &patterns) {
  patterns.add<BroadcastInDimPattern, TransposePattern, ReshapePattern,
               SlicePattern, DynamicSlicePattern, DynamicUpdateSlicePattern,
               ConcatenatePattern>(patterns.getContext());
}
