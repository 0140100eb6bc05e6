//===- IndexingOps.cpp - Gather and GatherND ------------------------------===//
//
// Gathers with constant indices that pick a constant or one result loop per
// component become copying linalg.generic ops with that indexing map; other
// gathers a tensor.generate that reads the data with tensor.extract at the
// gathered position (negative indices count from the end, as ONNX says). Gathering known elements of a shape tensor stays at
// import time.
//
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;

namespace kvc {
namespace onnx_import {
namespace {

/// `index` as an in-range index into a dim of size `size`.
Value wrapIndex(OpBuilder &b, Location l, Value index, Value size) {
  Value i = index.getType().isIndex()
                ? index
                : Value(arith::IndexCastOp::create(b, l, b.getIndexType(),
                                                   index));
  Value zero = arith::ConstantIndexOp::create(b, l, 0);
  Value negative =
      arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, i, zero);
  Value wrapped = arith::AddIOp::create(b, l, i, size);
  return arith::SelectOp::create(b, l, negative, wrapped, i);
}

RankedTensorType resultType(ArrayRef<OpFoldResult> shape, Type element) {
  SmallVector<int64_t> dims;
  for (OpFoldResult ofr : shape) {
    std::optional<int64_t> c = getConstantIntValue(ofr);
    dims.push_back(c ? *c : ShapedType::kDynamic);
  }
  return RankedTensorType::get(dims, element);
}

SmallVector<Value> dynamicSizes(Importer &im, ArrayRef<OpFoldResult> shape) {
  SmallVector<Value> sizes;
  for (OpFoldResult ofr : shape)
    if (!getConstantIntValue(ofr))
      sizes.push_back(im.toIndex(ofr));
  return sizes;
}

/// For constant indices, the affine expression each gathered component is
/// of the result's loops: a constant, or one loop's index (e.g. the
/// [[0, j]] indices exporters emit to read a row). Such gathers become
/// plain copies with an indexing map, which later passes can see through.
std::optional<SmallVector<AffineExpr>>
affineComponents(Importer &im, TensorValue &indices, int64_t components,
                 int64_t leadOffset) {
  if (!indices.constant || !indices.type.hasStaticShape())
    return std::nullopt;
  ArrayRef<int64_t> shape = indices.type.getShape();
  int64_t lead = int64_t(shape.size()) - (components > 0 ? 1 : 0);
  int64_t q = components > 0 ? components : 1;
  SmallVector<int64_t> values;
  for (APInt v : indices.constant.getValues<APInt>())
    values.push_back(v.getSExtValue());
  int64_t count = int64_t(values.size()) / std::max<int64_t>(q, 1);
  SmallVector<AffineExpr> exprs;
  for (int64_t j = 0; j < q; ++j) {
    auto at = [&](int64_t flat) { return values[flat * q + j]; };
    // Constant component.
    bool constant = llvm::all_of(llvm::seq<int64_t>(0, count),
                                 [&](int64_t f) { return at(f) == at(0); });
    if (constant && at(0) >= 0) {
      exprs.push_back(im.builder.getAffineConstantExpr(at(0)));
      continue;
    }
    std::optional<int64_t> loop;
    for (int64_t k = 0; k < lead && !loop; ++k) {
      bool matches = true;
      for (int64_t f = 0; f < count && matches; ++f) {
        int64_t rest = f, coordinate = 0;
        for (int64_t d = lead - 1; d >= 0; --d) {
          if (d == k)
            coordinate = rest % shape[d];
          rest /= shape[d];
        }
        matches = at(f) == coordinate;
      }
      if (matches)
        loop = k;
    }
    if (!loop)
      return std::nullopt;
    exprs.push_back(im.builder.getAffineDimExpr(*loop + leadOffset));
  }
  return exprs;
}

/// A copy of `data` through `map` into a tensor of `shape`.
Value affineGather(Importer &im, Value data, AffineMap map,
                   ArrayRef<OpFoldResult> shape) {
  auto type = cast<RankedTensorType>(data.getType());
  Value init = im.emptyTensor(shape, type.getElementType());
  int64_t rank = shape.size();
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  return linalg::GenericOp::create(
             im.builder, im.loc, init.getType(), ValueRange{data},
             ValueRange{init},
             ArrayRef<AffineMap>{map, im.builder.getMultiDimIdentityMap(rank)},
             iterators,
             [](OpBuilder &b, Location l, ValueRange args) {
               linalg::YieldOp::create(b, l, args[0]);
             })
      .getResult(0);
}

LogicalResult importGather(Importer &im) {
  if (failed(im.checkAttributes({"axis"})))
    return failure();
  FailureOr<TensorValue *> data = im.input(0);
  FailureOr<TensorValue *> indices = im.input(1);
  FailureOr<int64_t> axis = im.intAttr("axis", 0);
  if (failed(data) || failed(indices) || failed(axis))
    return failure();
  RankedTensorType dataType = (*data)->type;
  if (dataType.getRank() == 0)
    return im.nodeError() << "data must have rank >= 1", failure();
  if (!(*indices)->type.getElementType().isInteger(64) &&
      !(*indices)->type.getElementType().isInteger(32))
    return im.nodeError() << "indices must be int32 or int64", failure();
  FailureOr<int64_t> a = im.normalizeAxis(*axis, dataType.getRank());
  if (failed(a))
    return failure();

  // Shape arithmetic: known elements picked by constant indices.
  if (std::optional<SmallVector<OpFoldResult>> elems = im.elementsOf(**data))
    if (std::optional<SmallVector<int64_t>> picks =
            im.constantInts(**indices);
        picks && (*indices)->type.getRank() <= 1) {
      SmallVector<OpFoldResult> out;
      int64_t n = elems->size();
      for (int64_t p : *picks) {
        if (p < -n || p >= n)
          return im.nodeError() << "index " << p << " is out of range for "
                                << n << " elements",
                 failure();
        out.push_back((*elems)[p < 0 ? p + n : p]);
      }
      TensorValue value;
      value.type = RankedTensorType::get((*indices)->type.getShape(),
                                         dataType.getElementType());
      value.elems = std::move(out);
      im.setOutput(0, std::move(value));
      return success();
    }

  Value x = im.materialize(**data);
  Value idx = im.materialize(**indices);
  int64_t indexRank = (*indices)->type.getRank();
  SmallVector<OpFoldResult> outShape;
  for (int64_t d = 0; d < *a; ++d)
    outShape.push_back(im.dimOf(x, d));
  for (int64_t d = 0; d < indexRank; ++d)
    outShape.push_back(im.dimOf(idx, d));
  for (int64_t d = *a + 1; d < dataType.getRank(); ++d)
    outShape.push_back(im.dimOf(x, d));
  int64_t rank = outShape.size();
  if (std::optional<SmallVector<AffineExpr>> component =
          affineComponents(im, **indices, 0, *a)) {
    SmallVector<AffineExpr> exprs;
    for (int64_t d = 0; d < *a; ++d)
      exprs.push_back(im.builder.getAffineDimExpr(d));
    exprs.push_back((*component)[0]);
    for (int64_t d = *a + 1; d < dataType.getRank(); ++d)
      exprs.push_back(im.builder.getAffineDimExpr(d - 1 + indexRank));
    int64_t axisSize = dataType.getDimSize(*a);
    auto c = dyn_cast<AffineConstantExpr>((*component)[0]);
    if (!c || (!ShapedType::isDynamic(axisSize) && c.getValue() < axisSize)) {
      im.setOutput(0, affineGather(im, x, AffineMap::get(rank, 0, exprs,
                                                         im.context),
                                   outShape));
      return success();
    }
  }
  // Data-dependent indices: a tensor.generate reading both tensors.
  Value axisSize = im.toIndex(im.dimOf(x, *a));
  auto generate = tensor::GenerateOp::create(
      im.builder, im.loc, resultType(outShape, dataType.getElementType()),
      dynamicSizes(im, outShape),
      [&](OpBuilder &b, Location l, ValueRange at) {
        SmallVector<Value> position(at.begin(), at.begin() + *a);
        SmallVector<Value> inIndex(at.begin() + *a,
                                   at.begin() + *a + indexRank);
        Value i = tensor::ExtractOp::create(b, l, idx, inIndex);
        position.push_back(wrapIndex(b, l, i, axisSize));
        position.append(at.begin() + *a + indexRank, at.end());
        Value v = tensor::ExtractOp::create(b, l, x, position);
        tensor::YieldOp::create(b, l, v);
      });
  im.setOutput(0, generate.getResult());
  return success();
}

LogicalResult importGatherND(Importer &im) {
  if (failed(im.checkAttributes({"batch_dims"})))
    return failure();
  FailureOr<Value> x = im.inputTensor(0);
  FailureOr<Value> idx = im.inputTensor(1);
  FailureOr<int64_t> batchDims = im.intAttr("batch_dims", 0);
  if (failed(x) || failed(idx) || failed(batchDims))
    return failure();
  if (*batchDims != 0)
    return im.nodeError() << "batch_dims = " << *batchDims
                          << " is not supported",
           failure();
  auto dataType = cast<RankedTensorType>(x->getType());
  auto indexType = cast<RankedTensorType>(idx->getType());
  if (indexType.getRank() < 1 || indexType.isDynamicDim(indexType.getRank() - 1))
    return im.nodeError() << "the last dim of indices must be static",
           failure();
  int64_t depth = indexType.getDimSize(indexType.getRank() - 1);
  if (depth < 1 || depth > dataType.getRank())
    return im.nodeError() << "indices address " << depth
                          << " dims of rank-" << dataType.getRank() << " data",
           failure();
  SmallVector<OpFoldResult> outShape;
  for (int64_t d = 0; d < indexType.getRank() - 1; ++d)
    outShape.push_back(im.dimOf(*idx, d));
  for (int64_t d = depth; d < dataType.getRank(); ++d)
    outShape.push_back(im.dimOf(*x, d));
  int64_t rank = outShape.size();
  int64_t lead = indexType.getRank() - 1;
  FailureOr<TensorValue *> indices = im.input(1);
  if (failed(indices))
    return failure();
  if (std::optional<SmallVector<AffineExpr>> components =
          affineComponents(im, **indices, depth, 0)) {
    bool inRange = true;
    for (auto [d, e] : llvm::enumerate(*components))
      if (auto c = dyn_cast<AffineConstantExpr>(e))
        inRange &= !dataType.isDynamicDim(d) &&
                   c.getValue() < dataType.getDimSize(d);
    if (inRange) {
      SmallVector<AffineExpr> exprs = *components;
      for (int64_t d = depth; d < dataType.getRank(); ++d)
        exprs.push_back(im.builder.getAffineDimExpr(lead + d - depth));
      im.setOutput(0, affineGather(im, *x, AffineMap::get(rank, 0, exprs,
                                                          im.context),
                                   outShape));
      return success();
    }
  }
  SmallVector<Value> sizes;
  for (int64_t d = 0; d < depth; ++d)
    sizes.push_back(im.toIndex(im.dimOf(*x, d)));
  auto generate = tensor::GenerateOp::create(
      im.builder, im.loc, resultType(outShape, dataType.getElementType()),
      dynamicSizes(im, outShape),
      [&](OpBuilder &b, Location l, ValueRange at) {
        SmallVector<Value> leading(at.begin(), at.begin() + lead);
        SmallVector<Value> position;
        for (int64_t j = 0; j < depth; ++j) {
          SmallVector<Value> component = leading;
          component.push_back(arith::ConstantIndexOp::create(b, l, j));
          Value i = tensor::ExtractOp::create(b, l, *idx, component);
          position.push_back(wrapIndex(b, l, i, sizes[j]));
        }
        position.append(at.begin() + lead, at.end());
        Value v = tensor::ExtractOp::create(b, l, *x, position);
        tensor::YieldOp::create(b, l, v);
      });
  im.setOutput(0, generate.getResult());
  return success();
}

} // namespace

void addIndexingOps(OpTable &table) {
  table["Gather"] = importGather;
  table["GatherND"] = importGatherND;
}

} // namespace onnx_import
} // namespace kvc
