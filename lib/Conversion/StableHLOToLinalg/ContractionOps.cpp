//===- ContractionOps.cpp - dot_general, dot and reduce to linalg ---------===//
//
// dot_general becomes linalg.matmul / linalg.batch_matmul when its
// dimension numbers are theirs, otherwise a linalg.generic whose loops are
// batch, lhs free, rhs free, contracting and whose body is a multiply-add:
// the contraction kvc-raise-attention looks for as QKᵀ and P·V. reduce
// becomes a linalg.generic with reduction loops, initialized by a
// linalg.fill of the init value.
//
//===----------------------------------------------------------------------===//

#include "Patterns.h"

#include "llvm/ADT/SmallBitVector.h"

using namespace mlir;
using namespace mlir::kvc;
using namespace mlir::kvc::shlo;

namespace {

/// Whether `dims` are distinct dimensions of a tensor of `rank`.
bool validDims(ArrayRef<int64_t> dims, int64_t rank,
               llvm::SmallBitVector &used) {
  for (int64_t dim : dims) {
    if (dim < 0 || dim >= rank || used.test(dim))
      return false;
    used.set(dim);
  }
  return true;
}

/// The dimensions of a tensor of `rank` in neither list, in order.
DimList freeDims(int64_t rank, ArrayRef<int64_t> a, ArrayRef<int64_t> b) {
  DimList dims;
  for (int64_t d = 0; d < rank; ++d)
    if (!llvm::is_contained(a, d) && !llvm::is_contained(b, d))
      dims.push_back(d);
  return dims;
}

LogicalResult checkDot(Operation *op, const DotDimensions &dims) {
  RankedTensorType lhs = tensorType(op->getOperand(0));
  RankedTensorType rhs = tensorType(op->getOperand(1));
  RankedTensorType result = tensorType(op->getResult(0));
  llvm::SmallBitVector lhsUsed(lhs.getRank()), rhsUsed(rhs.getRank());
  if (dims.lhsBatching.size() != dims.rhsBatching.size() ||
      dims.lhsContracting.size() != dims.rhsContracting.size() ||
      !validDims(dims.lhsBatching, lhs.getRank(), lhsUsed) ||
      !validDims(dims.lhsContracting, lhs.getRank(), lhsUsed) ||
      !validDims(dims.rhsBatching, rhs.getRank(), rhsUsed) ||
      !validDims(dims.rhsContracting, rhs.getRank(), rhsUsed))
    return op->emitError("dot dimension numbers are out of range, repeated "
                         "or unpaired");
  for (auto [l, r] : llvm::zip(dims.lhsBatching, dims.rhsBatching))
    if (lhs.getDimSize(l) != rhs.getDimSize(r))
      return op->emitError() << "batching dimensions " << l << " and " << r
                             << " have different sizes";
  for (auto [l, r] : llvm::zip(dims.lhsContracting, dims.rhsContracting))
    if (lhs.getDimSize(l) != rhs.getDimSize(r))
      return op->emitError() << "contracting dimensions " << l << " and "
                             << r << " have different sizes";
  SmallVector<int64_t> shape;
  for (int64_t d : dims.lhsBatching)
    shape.push_back(lhs.getDimSize(d));
  for (int64_t d :
       freeDims(lhs.getRank(), dims.lhsBatching, dims.lhsContracting))
    shape.push_back(lhs.getDimSize(d));
  for (int64_t d :
       freeDims(rhs.getRank(), dims.rhsBatching, dims.rhsContracting))
    shape.push_back(rhs.getDimSize(d));
  if (ArrayRef<int64_t>(shape) != result.getShape())
    return op->emitError() << "result type " << result
                           << " does not match the dot dimension numbers";
  Type element = result.getElementType();
  bool isFloat = isa<FloatType>(element);
  for (Type operand : {lhs.getElementType(), rhs.getElementType()})
    if (isa<FloatType>(operand) != isFloat || operand.isInteger(1))
      return op->emitError("dot of mixed float/integer or i1 operands is not "
                           "supported");
  return success();
}

/// The contraction of `lhs` and `rhs` by `dims` into `resultType`.
Value buildDot(OpBuilder &builder, Location loc, Value lhs, Value rhs,
               const DotDimensions &dims, RankedTensorType resultType) {
  RankedTensorType lhsType = tensorType(lhs), rhsType = tensorType(rhs);
  Type element = resultType.getElementType();
  Value zero = arith::ConstantOp::create(builder, loc,
                                         builder.getZeroAttr(element));
  Value init = createFilled(builder, loc, resultType, zero);
  bool sameTypes = lhsType.getElementType() == element &&
                   rhsType.getElementType() == element;
  auto is = [](ArrayRef<int64_t> dims, std::initializer_list<int64_t> want) {
    return llvm::equal(dims, want);
  };
  // The named ops where they fit: nicer IR, same loops.
  if (sameTypes && dims.lhsBatching.empty() && lhsType.getRank() == 2 &&
      rhsType.getRank() == 2 && is(dims.lhsContracting, {1}) &&
      is(dims.rhsContracting, {0}))
    return linalg::MatmulOp::create(builder, loc, ValueRange{lhs, rhs}, init)
        .getResult(0);
  if (sameTypes && lhsType.getRank() == 3 && rhsType.getRank() == 3 &&
      is(dims.lhsBatching, {0}) && is(dims.rhsBatching, {0}) &&
      is(dims.lhsContracting, {2}) && is(dims.rhsContracting, {1}))
    return linalg::BatchMatmulOp::create(builder, loc, ValueRange{lhs, rhs},
                                         init)
        .getResult(0);

  MLIRContext *context = builder.getContext();
  DimList lhsFree = freeDims(lhsType.getRank(), dims.lhsBatching,
                             dims.lhsContracting);
  DimList rhsFree = freeDims(rhsType.getRank(), dims.rhsBatching,
                             dims.rhsContracting);
  unsigned numBatch = dims.lhsBatching.size();
  unsigned numParallel = numBatch + lhsFree.size() + rhsFree.size();
  unsigned numLoops = numParallel + dims.lhsContracting.size();
  auto operandMap = [&](int64_t rank, ArrayRef<int64_t> batching,
                        ArrayRef<int64_t> contracting, ArrayRef<int64_t> free,
                        unsigned freeStart) {
    SmallVector<AffineExpr> exprs;
    for (int64_t d = 0; d < rank; ++d) {
      unsigned loop;
      if (auto *it = llvm::find(batching, d); it != batching.end())
        loop = it - batching.begin();
      else if (auto *it = llvm::find(contracting, d); it != contracting.end())
        loop = numParallel + (it - contracting.begin());
      else
        loop = freeStart + (llvm::find(free, d) - free.begin());
      exprs.push_back(getAffineDimExpr(loop, context));
    }
    return AffineMap::get(numLoops, 0, exprs, context);
  };
  SmallVector<AffineMap> maps = {
      operandMap(lhsType.getRank(), dims.lhsBatching, dims.lhsContracting,
                 lhsFree, numBatch),
      operandMap(rhsType.getRank(), dims.rhsBatching, dims.rhsContracting,
                 rhsFree, numBatch + lhsFree.size()),
      AffineMap::getMultiDimIdentityMap(numLoops, context)
          .getMajorSubMap(numParallel)};
  SmallVector<utils::IteratorType> iterators(numParallel,
                                             utils::IteratorType::parallel);
  iterators.append(dims.lhsContracting.size(), utils::IteratorType::reduction);
  auto generic = linalg::GenericOp::create(
      builder, loc, TypeRange{resultType}, ValueRange{lhs, rhs}, init, maps,
      iterators, [&](OpBuilder &b, Location bodyLoc, ValueRange args) {
        Value a = convertScalar(b, bodyLoc, args[0], element);
        Value c = convertScalar(b, bodyLoc, args[1], element);
        Value sum;
        if (isa<FloatType>(element)) {
          Value product = arith::MulFOp::create(b, bodyLoc, a, c);
          sum = arith::AddFOp::create(b, bodyLoc, args[2], product);
        } else {
          Value product = arith::MulIOp::create(b, bodyLoc, a, c);
          sum = arith::AddIOp::create(b, bodyLoc, args[2], product);
        }
        linalg::YieldOp::create(b, bodyLoc, sum);
      });
  return generic->getResult(0);
}

struct DotGeneralPattern : public StableHLOPattern {
  DotGeneralPattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.dot_general", context,
                         {"dot_dimension_numbers", "precision_config"}) {}

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() != 2 || op->getNumResults() != 1)
      return op->emitError("expected 2 operands and 1 result");
    FailureOr<DotDimensions> dims = readDotDimensions(op);
    if (failed(dims) || failed(checkPrecisionConfig(op)))
      return failure();
    return checkDot(op, *dims);
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    DotDimensions dims = *readDotDimensions(op, false);
    rewriter.replaceOp(op, buildDot(rewriter, op->getLoc(), operands[0],
                                    operands[1], dims,
                                    tensorType(op->getResult(0))));
    return success();
  }
};

/// The legacy `stablehlo.dot`: vector/matrix products over the last lhs and
/// the first rhs dimension.
struct DotPattern : public StableHLOPattern {
  DotPattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.dot", context, {"precision_config"}) {}

  static DotDimensions dimensions(Operation *op) {
    DotDimensions dims;
    dims.lhsContracting = {tensorType(op->getOperand(0)).getRank() - 1};
    dims.rhsContracting = {0};
    return dims;
  }

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() != 2 || op->getNumResults() != 1)
      return op->emitError("expected 2 operands and 1 result");
    int64_t lhsRank = tensorType(op->getOperand(0)).getRank();
    int64_t rhsRank = tensorType(op->getOperand(1)).getRank();
    if (lhsRank < 1 || lhsRank > 2 || rhsRank < 1 || rhsRank > 2)
      return op->emitError("dot operands must be vectors or matrices");
    if (failed(checkPrecisionConfig(op)))
      return failure();
    return checkDot(op, dimensions(op));
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, buildDot(rewriter, op->getLoc(), operands[0],
                                    operands[1], dimensions(op),
                                    tensorType(op->getResult(0))));
    return success();
  }
};

struct ReducePattern : public StableHLOPattern {
  ReducePattern(MLIRContext *context)
      : StableHLOPattern("stablehlo.reduce", context, {"dimensions"}) {}

  LogicalResult check(Operation *op) const override {
    if (op->getNumOperands() != 2 || op->getNumResults() != 1 ||
        op->getNumRegions() != 1)
      return op->emitError("only reductions of one tensor are supported "
                           "(expected 1 input, 1 init value, 1 result)");
    FailureOr<DimList> dims = readDims(op, "dimensions", true);
    if (failed(dims))
      return failure();
    RankedTensorType input = tensorType(op->getOperand(0));
    RankedTensorType init = tensorType(op->getOperand(1));
    RankedTensorType result = tensorType(op->getResult(0));
    llvm::SmallBitVector used(input.getRank());
    if (!validDims(*dims, input.getRank(), used))
      return op->emitError("reduce dimensions are out of range or repeated");
    SmallVector<int64_t> shape;
    for (int64_t d = 0; d < input.getRank(); ++d)
      if (!used.test(d))
        shape.push_back(input.getDimSize(d));
    Type element = input.getElementType();
    if (init.getRank() != 0 || init.getElementType() != element ||
        result.getElementType() != element ||
        ArrayRef<int64_t>(shape) != result.getShape())
      return op->emitError("init value or result type does not match the "
                           "reduced input");
    FailureOr<Operation *> combiner =
        readCombiner(op, op->getRegion(0), /*allowOverwrite=*/false, true);
    return failure(failed(combiner));
  }

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> operands,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op->getLoc();
    DimList dims = *readDims(op, "dimensions", true, false);
    Operation *combiner = *readCombiner(op, op->getRegion(0), false, false);
    RankedTensorType input = tensorType(operands[0]);
    RankedTensorType result = tensorType(op->getResult(0));
    MLIRContext *context = op->getContext();
    unsigned rank = input.getRank();
    SmallVector<AffineExpr> outExprs;
    SmallVector<utils::IteratorType> iterators;
    for (unsigned d = 0; d < rank; ++d) {
      bool reduced = llvm::is_contained(dims, int64_t(d));
      iterators.push_back(reduced ? utils::IteratorType::reduction
                                  : utils::IteratorType::parallel);
      if (!reduced)
        outExprs.push_back(getAffineDimExpr(d, context));
    }
    Value init = createFilled(rewriter, loc, result,
                              scalarOf(rewriter, loc, operands[1]));
    SmallVector<AffineMap> maps = {
        AffineMap::getMultiDimIdentityMap(rank, context),
        AffineMap::get(rank, 0, outExprs, context)};
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{result}, operands[0], init, maps, iterators,
        [&](OpBuilder &b, Location bodyLoc, ValueRange args) {
          Value combined = buildCombiner(b, bodyLoc, combiner, args[1], args[0]);
          linalg::YieldOp::create(b, bodyLoc, combined);
        });
    rewriter.replaceOp(op, generic->getResults());
    return success();
  }
};

} // namespace

void shlo::populateContractionPatterns(RewritePatternSet &patterns) {
  patterns.add<DotGeneralPattern, DotPattern, ReducePattern>(
      patterns.getContext());
}
