//===- Builders.cpp - IR building blocks of the ONNX importer -------------===//
//
// Broadcasting elementwise ops as one linalg.generic (splat constants folded
// into the body, so `x * 0.125` stays a mulf by a constant, the form
// kvc-raise-attention reads scales from), numpy broadcasting as
// linalg.broadcast, reshapes as collapse/expand_shape when the shapes allow
// it, and ONNX Cast semantics on scalars.
//
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;

namespace kvc {
namespace onnx_import {

ElementwiseOperand Importer::operandOf(TensorValue &value) {
  ElementwiseOperand operand;
  if (TypedAttr splat = splatOf(value)) {
    operand.splat = splat;
    operand.splatType = value.type;
    return operand;
  }
  operand.tensor = materialize(value);
  return operand;
}

Value Importer::indexConstant(int64_t v) {
  return arith::ConstantIndexOp::create(builder, loc, v);
}

Value Importer::toIndex(OpFoldResult ofr) {
  if (auto attr = dyn_cast<Attribute>(ofr))
    return indexConstant(cast<IntegerAttr>(attr).getInt());
  Value v = cast<Value>(ofr);
  if (v.getType().isIndex())
    return v;
  return arith::IndexCastOp::create(builder, loc, builder.getIndexType(), v);
}

OpFoldResult Importer::dimOf(Value tensor, int64_t dim) {
  auto type = cast<RankedTensorType>(tensor.getType());
  if (!type.isDynamicDim(dim))
    return builder.getIndexAttr(type.getDimSize(dim));
  return tensor::DimOp::create(builder, loc, tensor, dim).getResult();
}

SmallVector<OpFoldResult> Importer::dimsOf(Value tensor) {
  SmallVector<OpFoldResult> dims;
  for (int64_t i = 0, e = cast<RankedTensorType>(tensor.getType()).getRank();
       i < e; ++i)
    dims.push_back(dimOf(tensor, i));
  return dims;
}

Value Importer::emptyTensor(ArrayRef<OpFoldResult> shape, Type elementType) {
  return tensor::EmptyOp::create(builder, loc, shape, elementType);
}

Value Importer::filledTensor(ArrayRef<OpFoldResult> shape, TypedAttr value) {
  Value empty = emptyTensor(shape, value.getType());
  Value scalar = arith::ConstantOp::create(builder, loc, value);
  return linalg::FillOp::create(builder, loc, scalar, empty).getResult(0);
}

/// Static size of dim `i` of an operand, or kDynamic.
static ArrayRef<int64_t> operandShape(const ElementwiseOperand &operand) {
  if (operand.tensor)
    return cast<RankedTensorType>(operand.tensor.getType()).getShape();
  return operand.splatType.getShape();
}

FailureOr<Value> Importer::elementwise(ArrayRef<ElementwiseOperand> operands,
                                       Type resultElement,
                                       const ScalarBuilder &body) {
  int64_t rank = 0;
  for (const ElementwiseOperand &operand : operands)
    rank = std::max<int64_t>(rank, operandShape(operand).size());

  // Output dims: a static size other than 1 wins; otherwise a dynamic one
  // (assumed not to be 1 at run time, as numpy-broadcasting importers do).
  SmallVector<OpFoldResult> outShape;
  for (int64_t d = 0; d < rank; ++d) {
    std::optional<int64_t> fixed;
    Value dynamicFrom;
    int64_t dynamicDim = 0;
    for (const ElementwiseOperand &operand : operands) {
      ArrayRef<int64_t> shape = operandShape(operand);
      int64_t i = d - (rank - int64_t(shape.size()));
      if (i < 0)
        continue;
      int64_t size = shape[i];
      if (ShapedType::isDynamic(size)) {
        if (!dynamicFrom && operand.tensor) {
          dynamicFrom = operand.tensor;
          dynamicDim = i;
        }
        continue;
      }
      if (size == 1)
        continue;
      if (fixed && *fixed != size)
        return nodeError() << "operand shapes do not broadcast (dim " << d
                           << ": " << *fixed << " vs " << size << ")",
               failure();
      fixed = size;
    }
    if (fixed)
      outShape.push_back(builder.getIndexAttr(*fixed));
    else if (dynamicFrom)
      outShape.push_back(dimOf(dynamicFrom, dynamicDim));
    else
      outShape.push_back(builder.getIndexAttr(1));
  }
  SmallVector<int64_t> outStatic;
  for (OpFoldResult ofr : outShape) {
    std::optional<int64_t> c = getConstantIntValue(ofr);
    outStatic.push_back(c ? *c : ShapedType::kDynamic);
  }

  SmallVector<Value> inputs;
  SmallVector<AffineMap> maps;
  for (const ElementwiseOperand &operand : operands) {
    if (!operand.tensor)
      continue;
    ArrayRef<int64_t> shape = operandShape(operand);
    int64_t offset = rank - int64_t(shape.size());
    SmallVector<AffineExpr> exprs;
    for (auto [i, size] : llvm::enumerate(shape)) {
      int64_t d = int64_t(i) + offset;
      bool broadcast = size == 1 && outStatic[d] != 1;
      exprs.push_back(broadcast ? builder.getAffineConstantExpr(0)
                                : builder.getAffineDimExpr(d));
    }
    inputs.push_back(operand.tensor);
    maps.push_back(AffineMap::get(rank, 0, exprs, context));
  }
  maps.push_back(builder.getMultiDimIdentityMap(rank));
  Value init = emptyTensor(outShape, resultElement);
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      builder, loc, init.getType(), inputs, ValueRange{init}, maps, iterators,
      [&](OpBuilder &b, Location l, ValueRange args) {
        SmallVector<Value> scalars;
        unsigned next = 0;
        for (const ElementwiseOperand &operand : operands) {
          if (operand.tensor)
            scalars.push_back(args[next++]);
          else
            scalars.push_back(arith::ConstantOp::create(b, l, operand.splat));
        }
        linalg::YieldOp::create(b, l, body(b, l, scalars));
      });
  return generic.getResult(0);
}

/// Collapses away the unit dims `drop` of `tensor` (looking through the
/// tensor.expand_shape that added them, as Unsqueeze does).
static Value collapseUnitDims(OpBuilder &b, Location loc, Value tensor,
                              const llvm::SmallBitVector &drop) {
  auto type = cast<RankedTensorType>(tensor.getType());
  SmallVector<ReassociationIndices> groups;
  ReassociationIndices pending;
  for (int64_t i = 0; i < type.getRank(); ++i) {
    pending.push_back(i);
    if (!drop.test(i)) {
      groups.push_back(pending);
      pending.clear();
    }
  }
  if (!pending.empty()) {
    if (groups.empty())
      groups.push_back({});
    groups.back().append(pending.begin(), pending.end());
    if (groups.size() == 1 && drop.all())
      groups.clear();
  }
  auto collapsed = cast<RankedTensorType>(
      tensor::CollapseShapeOp::inferCollapsedType(type, groups));
  // Reshapes keep the row-major order, so collapsing what an expand_shape
  // made back to its source's shape gives the source.
  if (auto expand = tensor.getDefiningOp<tensor::ExpandShapeOp>())
    if (expand.getSrcType() == collapsed)
      return expand.getSrc();
  return tensor::CollapseShapeOp::create(b, loc, tensor, groups);
}

FailureOr<Value> Importer::broadcastTo(Value tensor,
                                       ArrayRef<OpFoldResult> shape) {
  auto type = cast<RankedTensorType>(tensor.getType());
  int64_t rank = std::max<int64_t>(type.getRank(), shape.size());
  int64_t inOffset = rank - type.getRank();
  int64_t shapeOffset = rank - int64_t(shape.size());
  SmallVector<OpFoldResult> outShape;
  SmallVector<int64_t> newDims;
  llvm::SmallBitVector drop(type.getRank());
  for (int64_t d = 0; d < rank; ++d) {
    int64_t i = d - inOffset;
    int64_t s = d - shapeOffset;
    std::optional<int64_t> target =
        s >= 0 ? getConstantIntValue(shape[s]) : std::optional<int64_t>(1);
    if (i < 0) {
      // A new leading dim.
      outShape.push_back(s >= 0 ? shape[s] : builder.getIndexAttr(1));
      newDims.push_back(d);
      continue;
    }
    int64_t size = type.getDimSize(i);
    if (target && *target == 1) {
      outShape.push_back(dimOf(tensor, i));
      continue;
    }
    if (size == 1) {
      outShape.push_back(shape[s]);
      drop.set(i);
      newDims.push_back(d);
      continue;
    }
    if (target && !ShapedType::isDynamic(size) && *target != size)
      return nodeError() << "cannot expand dim " << i << " of size " << size
                         << " to " << *target,
             failure();
    outShape.push_back(ShapedType::isDynamic(size) && target
                           ? shape[s]
                           : dimOf(tensor, i));
  }
  if (newDims.empty()) {
    SmallVector<int64_t> outStatic;
    for (OpFoldResult ofr : outShape) {
      std::optional<int64_t> c = getConstantIntValue(ofr);
      outStatic.push_back(c ? *c : ShapedType::kDynamic);
    }
    auto outType = RankedTensorType::get(outStatic, type.getElementType());
    if (outType == type)
      return tensor;
    return tensor::CastOp::create(builder, loc, outType, tensor).getResult();
  }
  Value source = drop.any() ? collapseUnitDims(builder, loc, tensor, drop)
                            : tensor;
  Value init = emptyTensor(outShape, type.getElementType());
  return linalg::BroadcastOp::create(builder, loc, source, init, newDims)
      .getResult()[0];
}

Value Importer::reshape(Value tensor, ArrayRef<OpFoldResult> shape) {
  auto type = cast<RankedTensorType>(tensor.getType());
  SmallVector<int64_t> outStatic;
  for (OpFoldResult ofr : shape) {
    std::optional<int64_t> c = getConstantIntValue(ofr);
    outStatic.push_back(c ? *c : ShapedType::kDynamic);
  }
  auto outType = RankedTensorType::get(outStatic, type.getElementType());
  if (outType == type)
    return tensor;
  if (outType.getRank() == type.getRank() && type.hasStaticShape() &&
      outType.hasStaticShape() && outType.getShape() == type.getShape())
    return tensor;
  std::optional<SmallVector<ReassociationIndices>> groups =
      getReassociationIndicesForReshape(type, outType);
  if (groups && outType.getRank() < type.getRank())
    return tensor::CollapseShapeOp::create(builder, loc, outType, tensor,
                                           *groups);
  if (groups && outType.getRank() > type.getRank())
    return tensor::ExpandShapeOp::create(builder, loc, outType, tensor,
                                         *groups, shape);
  if (type.getRank() == 0 && outType.hasStaticShape())
    return tensor::ExpandShapeOp::create(builder, loc, outType, tensor,
                                         ArrayRef<ReassociationIndices>{},
                                         shape);
  if (outType.getRank() == 0 && type.hasStaticShape())
    return tensor::CollapseShapeOp::create(builder, loc, outType, tensor,
                                           ArrayRef<ReassociationIndices>{});
  // No single collapse or expand: through 1-D when static, else
  // tensor.reshape with a shape operand.
  if (type.hasStaticShape() && outType.hasStaticShape() && type.getRank() > 0 &&
      outType.getRank() > 0) {
    ReassociationIndices all;
    for (int64_t i = 0; i < type.getRank(); ++i)
      all.push_back(i);
    Value flat = tensor::CollapseShapeOp::create(builder, loc, tensor,
                                                 ArrayRef{all});
    ReassociationIndices allOut;
    for (int64_t i = 0; i < outType.getRank(); ++i)
      allOut.push_back(i);
    return tensor::ExpandShapeOp::create(builder, loc, outType, flat,
                                         ArrayRef{allOut}, shape);
  }
  SmallVector<Value> sizes;
  for (OpFoldResult ofr : shape)
    sizes.push_back(arith::IndexCastOp::create(builder, loc,
                                               builder.getI64Type(),
                                               toIndex(ofr)));
  Value shapeTensor = tensor::FromElementsOp::create(
      builder, loc,
      RankedTensorType::get({int64_t(sizes.size())}, builder.getI64Type()),
      sizes);
  return tensor::ReshapeOp::create(builder, loc, outType, tensor, shapeTensor);
}

Value Importer::castScalar(OpBuilder &b, Location l, Value v, Type to) {
  Type from = v.getType();
  if (from == to)
    return v;
  if (isa<FloatType>(from) && isa<FloatType>(to)) {
    if (from.getIntOrFloatBitWidth() < to.getIntOrFloatBitWidth())
      return arith::ExtFOp::create(b, l, to, v);
    return arith::TruncFOp::create(b, l, to, v);
  }
  if (isa<FloatType>(from)) {
    if (to.isInteger(1)) {
      Value zero = arith::ConstantOp::create(b, l, b.getZeroAttr(from));
      return arith::CmpFOp::create(b, l, arith::CmpFPredicate::UNE, v, zero);
    }
    return arith::FPToSIOp::create(b, l, to, v);
  }
  if (isa<FloatType>(to)) {
    if (from.isInteger(1))
      return arith::UIToFPOp::create(b, l, to, v);
    return arith::SIToFPOp::create(b, l, to, v);
  }
  if (to.isInteger(1)) {
    Value zero = arith::ConstantOp::create(b, l, b.getZeroAttr(from));
    return arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, v, zero);
  }
  if (from.isInteger(1))
    return arith::ExtUIOp::create(b, l, to, v);
  if (from.getIntOrFloatBitWidth() < to.getIntOrFloatBitWidth())
    return arith::ExtSIOp::create(b, l, to, v);
  return arith::TruncIOp::create(b, l, to, v);
}

} // namespace onnx_import
} // namespace kvc
