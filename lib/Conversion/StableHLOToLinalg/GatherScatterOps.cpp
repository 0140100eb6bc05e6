//===- GatherScatterOps.cpp - gather and scatter to linalg/scf ------------===//
//
// gather is a linalg.generic over the result whose body reads the start
// index vector and then the operand with tensor.extract (start indices
// clamped like StableHLO does). scatter, which JAX emits for per-sequence
// cache updates (`cache.at[l, b, pos].set(new)`), is a loop nest over the
// updates that combines each element into the operand with tensor.insert;
// a window that does not fit the operand is skipped, as XLA does.
//
//===----------------------------------------------------------------------===//

#include "Patterns.h"

#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::kvc;
using namespace mlir::kvc::shlo;

namespace {

/// Checks that `dims` are sorted, distinct and below `rank`.
bool sortedDims(ArrayRef<int64_t> dims, int64_t rank) {
  for (auto [i, dim] : llvm::enumerate(dims))
    if (dim < 0 || dim >= rank || (i > 0 && dims[i - 1] >= dim))
      return false;
  return true;
}

bool distinctDims(ArrayRef<int64_t> dims, int64_t rank) {
  for (auto [i, dim] : llvm::enumerate(dims))
    if (dim < 0 || dim >= rank || llvm::count(dims, dim) != 1)
      return false;
  return true;
}

/// The shape of the index tensor without its index vector dimension.
SmallVector<int64_t> batchShape(RankedTensorType indices,
                                int64_t indexVectorDim) {
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < indices.getRank(); ++d)
    if (d != indexVectorDim)
      shape.push_back(indices.getDimSize(d));
  return shape;
}

int64_t indexVectorSize(RankedTensorType indices, int64_t indexVectorDim) {
  return indexVectorDim == indices.getRank()
             ? 1
             : indices.getDimSize(indexVectorDim);
}

/// Component `k` of the index vector at batch position `batch`, as index.
Value readStartIndex(OpBuilder &b, Location loc, Value indices,
                     ValueRange batch, int64_t indexVectorDim, int64_t k) {
  SmallVector<Value> position(batch.begin(), batch.end());
  if (indexVectorDim < tensorType(indices).getRank())
    position.insert(position.begin() + indexVectorDim,
                    arith::ConstantIndexOp::create(b, loc, k));
  Value element = tensor::ExtractOp::create(b, loc, indices, position);
  Value wide = convertScalar(b, loc, element, b.getI64Type());
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), wide);
}

struct GatherPattern : public StableHLOPattern {
  GatherPattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.gather", context,
                         {"dimension_numbers", "slice_sizes",
                          "indices_are_sorted"}) {}

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() != 2 || op->getNumResults() != 1)
      return op->emitError("expected 2 operands and 1 result");
    FailureOr<GatherDimensions> dims = readGatherDimensions(op);
    FailureOr<DimList> sizes = readDims(op, "slice_sizes", true);
    if (failed(dims) || failed(sizes))
      return failure();
    RankedTensorType operand = tensorType(op->getOperand(0));
    RankedTensorType indices = tensorType(op->getOperand(1));
    RankedTensorType result = tensorType(op->getResult(0));
    if (!dims->operandBatchingDims.empty() ||
        !dims->startIndicesBatchingDims.empty())
      return op->emitError("gather with batching dimensions is not supported");
    if (!isa<IntegerType>(indices.getElementType()))
      return op->emitError("gather indices must be integers");
    int64_t ivd = dims->indexVectorDim;
    if (ivd < 0 || ivd > indices.getRank())
      return op->emitError() << "index_vector_dim " << ivd
                             << " is out of range";
    if (int64_t(dims->startIndexMap.size()) != indexVectorSize(indices, ivd) ||
        !distinctDims(dims->startIndexMap, operand.getRank()))
      return op->emitError("start_index_map does not match the index vector");
    if (int64_t(sizes->size()) != operand.getRank())
      return op->emitError("slice_sizes does not have the operand's rank");
    if (!sortedDims(dims->collapsedSliceDims, operand.getRank()))
      return op->emitError("collapsed_slice_dims are out of range");
    for (int64_t d = 0; d < operand.getRank(); ++d)
      if ((*sizes)[d] < 0 || (*sizes)[d] > operand.getDimSize(d) ||
          (llvm::is_contained(dims->collapsedSliceDims, d) &&
           (*sizes)[d] != 1))
        return op->emitError() << "slice size of dimension " << d
                               << " does not fit the operand";
    // The result: batch dimensions where offset_dims are not.
    SmallVector<int64_t> batch = batchShape(indices, ivd);
    SmallVector<int64_t> window;
    for (int64_t d = 0; d < operand.getRank(); ++d)
      if (!llvm::is_contained(dims->collapsedSliceDims, d))
        window.push_back((*sizes)[d]);
    int64_t rank = batch.size() + window.size();
    if (result.getRank() != rank || dims->offsetDims.size() != window.size() ||
        !sortedDims(dims->offsetDims, rank))
      return op->emitError("offset_dims do not match the result rank");
    SmallVector<int64_t> shape;
    auto batchIt = batch.begin(), windowIt = window.begin();
    for (int64_t d = 0; d < rank; ++d)
      shape.push_back(llvm::is_contained(dims->offsetDims, d) ? *windowIt++
                                                              : *batchIt++);
    if (ArrayRef<int64_t>(shape) != result.getShape() ||
        result.getElementType() != operand.getElementType())
      return op->emitError() << "result type " << result
                             << " does not match the gather";
    return success();
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    GatherDimensions dims = *readGatherDimensions(op, false);
    DimList sizes = *readDims(op, "slice_sizes", true, false);
    Value operand = operands[0], indices = operands[1];
    RankedTensorType operandType = tensorType(operand);
    RankedTensorType result = tensorType(op->getResult(0));
    Value gathered = buildElementwise(
        rewriter, op->getLoc(), result, {},
        [&](OpBuilder &b, Location loc, ValueRange) -> Value {
          SmallVector<Value> batch, offsets;
          for (int64_t d = 0; d < result.getRank(); ++d)
            (llvm::is_contained(dims.offsetDims, d) ? offsets : batch)
                .push_back(linalg::IndexOp::create(b, loc, d));
          SmallVector<Value> position;
          auto offsetIt = offsets.begin();
          for (int64_t d = 0; d < operandType.getRank(); ++d) {
            Value index = llvm::is_contained(dims.collapsedSliceDims, d)
                              ? Value()
                              : *offsetIt++;
            if (auto *it = llvm::find(dims.startIndexMap, d);
                it != dims.startIndexMap.end()) {
              Value start = readStartIndex(b, loc, indices, batch,
                                           dims.indexVectorDim,
                                           it - dims.startIndexMap.begin());
              start = clampIndex(b, loc, start,
                                 operandType.getDimSize(d) - sizes[d]);
              index = index ? arith::AddIOp::create(b, loc, start, index)
                                  .getResult()
                            : start;
            }
            if (!index)
              index = arith::ConstantIndexOp::create(b, loc, 0);
            position.push_back(index);
          }
          return tensor::ExtractOp::create(b, loc, operand, position);
        });
    rewriter.replaceOp(op, gathered);
    return success();
  }
};

struct ScatterPattern : public StableHLOPattern {
  ScatterPattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.scatter", context,
                         {"scatter_dimension_numbers", "indices_are_sorted",
                          "unique_indices"}) {}

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() != 3 || op->getNumResults() != 1 ||
        op->getNumRegions() != 1)
      return op->emitError("only scatters into one tensor are supported "
                           "(expected operand, indices, updates, 1 result)");
    FailureOr<ScatterDimensions> dims = readScatterDimensions(op);
    if (failed(dims))
      return failure();
    RankedTensorType operand = tensorType(op->getOperand(0));
    RankedTensorType indices = tensorType(op->getOperand(1));
    RankedTensorType updates = tensorType(op->getOperand(2));
    if (op->getResult(0).getType() != operand ||
        updates.getElementType() != operand.getElementType())
      return op->emitError("result and updates must have the operand's type");
    if (!dims->inputBatchingDims.empty() ||
        !dims->scatterIndicesBatchingDims.empty())
      return op->emitError("scatter with batching dimensions is not "
                           "supported");
    if (!isa<IntegerType>(indices.getElementType()))
      return op->emitError("scatter indices must be integers");
    int64_t ivd = dims->indexVectorDim;
    if (ivd < 0 || ivd > indices.getRank())
      return op->emitError() << "index_vector_dim " << ivd
                             << " is out of range";
    if (int64_t(dims->scatterDimsToOperandDims.size()) !=
            indexVectorSize(indices, ivd) ||
        !distinctDims(dims->scatterDimsToOperandDims, operand.getRank()))
      return op->emitError("scatter_dims_to_operand_dims does not match the "
                           "index vector");
    if (!sortedDims(dims->insertedWindowDims, operand.getRank()) ||
        !sortedDims(dims->updateWindowDims, updates.getRank()) ||
        dims->insertedWindowDims.size() + dims->updateWindowDims.size() !=
            size_t(operand.getRank()))
      return op->emitError("window dimensions do not match the operand");
    SmallVector<int64_t> batch = batchShape(indices, ivd);
    SmallVector<int64_t> scatterShape;
    for (int64_t d = 0; d < updates.getRank(); ++d)
      if (!llvm::is_contained(dims->updateWindowDims, d))
        scatterShape.push_back(updates.getDimSize(d));
    if (scatterShape != batch)
      return op->emitError("update scatter dimensions do not match the "
                           "indices");
    auto windowIt = dims->updateWindowDims.begin();
    for (int64_t d = 0; d < operand.getRank(); ++d)
      if (!llvm::is_contained(dims->insertedWindowDims, d) &&
          updates.getDimSize(*windowIt++) > operand.getDimSize(d))
        return op->emitError() << "update window exceeds operand dimension "
                               << d;
    FailureOr<Operation *> combiner =
        readCombiner(op, op->getRegion(0), /*allowOverwrite=*/true, true);
    return failure(failed(combiner));
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    ScatterDimensions dims = *readScatterDimensions(op, false);
    Operation *combiner = *readCombiner(op, op->getRegion(0), true, false);
    Location loc = op->getLoc();
    Value indices = operands[1], updates = operands[2];
    RankedTensorType operandType = tensorType(operands[0]);
    RankedTensorType updatesType = tensorType(updates);
    Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);

    // One loop per update dimension, the operand carried through.
    SmallVector<Value> ivs;
    Value current = operands[0];
    SmallVector<scf::ForOp> loops;
    OpBuilder::InsertionGuard guard(rewriter);
    for (int64_t d = 0; d < updatesType.getRank(); ++d) {
      Value upper = arith::ConstantIndexOp::create(rewriter, loc,
                                                   updatesType.getDimSize(d));
      auto loop = scf::ForOp::create(rewriter, loc, zero, upper, one,
                                     ValueRange{current});
      if (!loops.empty())
        scf::YieldOp::create(rewriter, loc, loop.getResults());
      loops.push_back(loop);
      rewriter.setInsertionPointToStart(loop.getBody());
      ivs.push_back(loop.getInductionVar());
      current = loop.getRegionIterArgs()[0];
    }

    SmallVector<Value> batch, window;
    for (int64_t d = 0; d < updatesType.getRank(); ++d)
      (llvm::is_contained(dims.updateWindowDims, d) ? window : batch)
          .push_back(ivs[d]);
    SmallVector<Value> position;
    Value inBounds;
    auto windowIt = window.begin();
    auto updateDimIt = dims.updateWindowDims.begin();
    for (int64_t d = 0; d < operandType.getRank(); ++d) {
      bool inserted = llvm::is_contained(dims.insertedWindowDims, d);
      Value index = inserted ? Value() : *windowIt++;
      int64_t windowSize =
          inserted ? 1 : updatesType.getDimSize(*updateDimIt++);
      if (auto *it = llvm::find(dims.scatterDimsToOperandDims, d);
          it != dims.scatterDimsToOperandDims.end()) {
        Value start = readStartIndex(rewriter, loc, indices, batch,
                                     dims.indexVectorDim,
                                     it - dims.scatterDimsToOperandDims.begin());
        Value low = arith::CmpIOp::create(rewriter, loc,
                                          arith::CmpIPredicate::sge, start,
                                          zero);
        Value limit = arith::ConstantIndexOp::create(
            rewriter, loc, operandType.getDimSize(d) - windowSize);
        Value high = arith::CmpIOp::create(rewriter, loc,
                                           arith::CmpIPredicate::sle, start,
                                           limit);
        Value fits = arith::AndIOp::create(rewriter, loc, low, high);
        inBounds = inBounds
                       ? arith::AndIOp::create(rewriter, loc, inBounds, fits)
                             .getResult()
                       : fits;
        index = index ? arith::AddIOp::create(rewriter, loc, start, index)
                            .getResult()
                      : start;
      }
      position.push_back(index ? index : zero);
    }

    auto store = [&](OpBuilder &b, Location bodyLoc) -> Value {
      Value update = tensor::ExtractOp::create(b, bodyLoc, updates, ivs);
      Value combined = update;
      if (combiner) {
        Value old = tensor::ExtractOp::create(b, bodyLoc, current, position);
        combined = buildCombiner(b, bodyLoc, combiner, old, update);
      }
      return tensor::InsertOp::create(b, bodyLoc, combined, current, position);
    };
    Value next;
    if (inBounds) {
      auto branch = scf::IfOp::create(
          rewriter, loc, inBounds,
          [&](OpBuilder &b, Location bodyLoc) {
            scf::YieldOp::create(b, bodyLoc, store(b, bodyLoc));
          },
          [&](OpBuilder &b, Location bodyLoc) {
            scf::YieldOp::create(b, bodyLoc, current);
          });
      next = branch.getResult(0);
    } else {
      next = store(rewriter, loc);
    }
    if (loops.empty()) {
      rewriter.replaceOp(op, next);
      return success();
    }
    scf::YieldOp::create(rewriter, loc, next);
    rewriter.replaceOp(op, loops.front().getResults());
    return success();
  }
};

} // namespace

void shlo::populateGatherScatterPatterns(RewritePatternSet &patterns) {
  patterns.add<GatherPattern, ScatterPattern>(patterns.getContext());
}
