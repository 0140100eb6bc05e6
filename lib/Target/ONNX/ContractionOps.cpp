//===- ContractionOps.cpp - MatMul, Gemm, reductions, Softmax -------------===//
//
// MatMul becomes the named linalg op the shapes allow: linalg.matmul for an
// activation times a 2-D weight (leading dims collapsed into rows),
// linalg.batch_matmul for equal batch dims (collapsed into one), else a
// broadcasting linalg.generic contraction. These are the QKᵀ/P·V forms
// kvc-raise-attention recognizes. Softmax is linalg.softmax, decomposed.
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

Value zeroFilled(Importer &im, ArrayRef<OpFoldResult> shape, Type element) {
  return im.filledTensor(shape, cast<TypedAttr>(im.builder.getZeroAttr(element)));
}

/// Collapses dims [from, to) of `x` into one.
Value collapseRange(Importer &im, Value x, int64_t from, int64_t to) {
  int64_t rank = cast<RankedTensorType>(x.getType()).getRank();
  if (to - from == 1)
    return x;
  SmallVector<ReassociationIndices> groups;
  for (int64_t d = 0; d < rank;) {
    ReassociationIndices group;
    if (d == from) {
      for (; d < to; ++d)
        group.push_back(d);
    } else {
      group.push_back(d++);
    }
    groups.push_back(group);
  }
  return tensor::CollapseShapeOp::create(im.builder, im.loc, x, groups);
}

/// Expands dim `dim` of `x` into `sizes`.
Value expandDim(Importer &im, Value x, int64_t dim,
                ArrayRef<OpFoldResult> sizes) {
  if (sizes.size() == 1)
    return x;
  auto type = cast<RankedTensorType>(x.getType());
  SmallVector<ReassociationIndices> groups;
  SmallVector<OpFoldResult> outShape;
  SmallVector<int64_t> outStatic;
  int64_t next = 0;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    ReassociationIndices group;
    if (d == dim) {
      for (OpFoldResult s : sizes) {
        group.push_back(next++);
        outShape.push_back(s);
        std::optional<int64_t> c = getConstantIntValue(s);
        outStatic.push_back(c ? *c : ShapedType::kDynamic);
      }
    } else {
      group.push_back(next++);
      outShape.push_back(im.dimOf(x, d));
      outStatic.push_back(type.getDimSize(d));
    }
    groups.push_back(group);
  }
  auto outType = RankedTensorType::get(outStatic, type.getElementType());
  return tensor::ExpandShapeOp::create(im.builder, im.loc, outType, x, groups,
                                       outShape);
}

bool sameDims(Importer &im, Value a, Value b, int64_t count) {
  auto ta = cast<RankedTensorType>(a.getType());
  auto tb = cast<RankedTensorType>(b.getType());
  for (int64_t d = 0; d < count; ++d) {
    int64_t x = ta.getDimSize(d), y = tb.getDimSize(d);
    if (ShapedType::isDynamic(x) != ShapedType::isDynamic(y))
      return false;
    if (!ShapedType::isDynamic(x) && x != y)
      return false;
  }
  return true;
}

/// A broadcasting contraction over (batch..., m, n, k) as linalg.generic.
FailureOr<Value> genericMatmul(Importer &im, Value a, Value b) {
  auto ta = cast<RankedTensorType>(a.getType());
  auto tb = cast<RankedTensorType>(b.getType());
  // 1-D operands: a vector is a 1 x K row or a K x 1 column.
  bool squeezeM = ta.getRank() == 1, squeezeN = tb.getRank() == 1;
  if (squeezeM)
    a = im.reshape(a, {im.builder.getIndexAttr(1), im.dimOf(a, 0)});
  if (squeezeN)
    b = im.reshape(b, {im.dimOf(b, 0), im.builder.getIndexAttr(1)});
  ta = cast<RankedTensorType>(a.getType());
  tb = cast<RankedTensorType>(b.getType());
  int64_t batch = std::max(ta.getRank(), tb.getRank()) - 2;
  int64_t loops = batch + 3;
  MLIRContext *ctx = im.context;
  auto dim = [&](int64_t d) { return getAffineDimExpr(d, ctx); };
  SmallVector<OpFoldResult> outShape;
  auto operandMap = [&](RankedTensorType t, bool isA) {
    SmallVector<AffineExpr> exprs;
    int64_t offset = batch - (t.getRank() - 2);
    for (int64_t d = 0; d < t.getRank() - 2; ++d) {
      int64_t other = d + offset;
      bool broadcast = t.getDimSize(d) == 1;
      exprs.push_back(broadcast ? getAffineConstantExpr(0, ctx) : dim(other));
    }
    if (isA) {
      exprs.push_back(dim(batch));
      exprs.push_back(dim(batch + 2));
    } else {
      exprs.push_back(dim(batch + 2));
      exprs.push_back(dim(batch + 1));
    }
    return AffineMap::get(loops, 0, exprs, ctx);
  };
  for (int64_t d = 0; d < batch; ++d) {
    int64_t ia = d - (batch - (ta.getRank() - 2));
    int64_t ib = d - (batch - (tb.getRank() - 2));
    int64_t sa = ia >= 0 ? ta.getDimSize(ia) : 1;
    int64_t sb = ib >= 0 ? tb.getDimSize(ib) : 1;
    if (sa != 1 && sb != 1 && !ShapedType::isDynamic(sa) &&
        !ShapedType::isDynamic(sb) && sa != sb)
      return im.nodeError() << "batch dims " << sa << " and " << sb
                            << " do not broadcast",
             failure();
    if (sa != 1)
      outShape.push_back(im.dimOf(a, ia));
    else if (ib >= 0)
      outShape.push_back(im.dimOf(b, ib));
    else
      outShape.push_back(im.builder.getIndexAttr(1));
  }
  outShape.push_back(im.dimOf(a, ta.getRank() - 2));
  outShape.push_back(im.dimOf(b, tb.getRank() - 1));
  Type element = ta.getElementType();
  Value init = zeroFilled(im, outShape, element);
  SmallVector<AffineExpr> outExprs;
  for (int64_t d = 0; d < batch + 2; ++d)
    outExprs.push_back(dim(d));
  SmallVector<AffineMap> maps = {operandMap(ta, true), operandMap(tb, false),
                                 AffineMap::get(loops, 0, outExprs, ctx)};
  SmallVector<utils::IteratorType> iterators(loops,
                                             utils::IteratorType::parallel);
  iterators.back() = utils::IteratorType::reduction;
  auto generic = linalg::GenericOp::create(
      im.builder, im.loc, init.getType(), ValueRange{a, b}, ValueRange{init},
      maps, iterators, [&](OpBuilder &nb, Location l, ValueRange args) {
        Value v;
        if (isa<FloatType>(element))
          v = arith::AddFOp::create(
              nb, l, args[2], arith::MulFOp::create(nb, l, args[0], args[1]));
        else
          v = arith::AddIOp::create(
              nb, l, args[2], arith::MulIOp::create(nb, l, args[0], args[1]));
        linalg::YieldOp::create(nb, l, v);
      });
  Value result = generic.getResult(0);
  SmallVector<OpFoldResult> finalShape = im.dimsOf(result);
  if (squeezeN)
    finalShape.erase(finalShape.end() - 1);
  if (squeezeM)
    finalShape.erase(finalShape.end() - (squeezeN ? 1 : 2));
  if (squeezeM || squeezeN)
    result = im.reshape(result, finalShape);
  return result;
}

LogicalResult importMatMul(Importer &im) {
  FailureOr<Value> a = im.inputTensor(0);
  FailureOr<Value> b = im.inputTensor(1);
  if (failed(a) || failed(b))
    return failure();
  auto ta = cast<RankedTensorType>(a->getType());
  auto tb = cast<RankedTensorType>(b->getType());
  if (ta.getElementType() != tb.getElementType())
    return im.nodeError() << "operand element types differ", failure();
  int64_t ra = ta.getRank(), rb = tb.getRank();
  if (ra == 0 || rb == 0)
    return im.nodeError() << "operands must have rank >= 1", failure();
  if (ra >= 2 && rb == 2 && isa<FloatType>(ta.getElementType())) {
    // Rows times a weight: linalg.matmul on the collapsed leading dims.
    SmallVector<OpFoldResult> rows;
    for (int64_t d = 0; d < ra - 1; ++d)
      rows.push_back(im.dimOf(*a, d));
    Value a2 = collapseRange(im, *a, 0, ra - 1);
    Value init = zeroFilled(im, {im.dimOf(a2, 0), im.dimOf(*b, 1)},
                            ta.getElementType());
    Value mm = linalg::MatmulOp::create(im.builder, im.loc, ValueRange{a2, *b},
                                        ValueRange{init})
                   .getResult(0);
    im.setOutput(0, expandDim(im, mm, 0, rows));
    return success();
  }
  if (ra == rb && ra >= 3 && sameDims(im, *a, *b, ra - 2) &&
      isa<FloatType>(ta.getElementType())) {
    SmallVector<OpFoldResult> batch;
    for (int64_t d = 0; d < ra - 2; ++d)
      batch.push_back(im.dimOf(*a, d));
    Value a3 = collapseRange(im, *a, 0, ra - 2);
    Value b3 = collapseRange(im, *b, 0, rb - 2);
    Value init = zeroFilled(
        im, {im.dimOf(a3, 0), im.dimOf(a3, 1), im.dimOf(b3, 2)},
        ta.getElementType());
    Value bmm = linalg::BatchMatmulOp::create(im.builder, im.loc,
                                              ValueRange{a3, b3},
                                              ValueRange{init})
                    .getResult(0);
    im.setOutput(0, expandDim(im, bmm, 0, batch));
    return success();
  }
  FailureOr<Value> result = genericMatmul(im, *a, *b);
  if (failed(result))
    return failure();
  im.setOutput(0, *result);
  return success();
}

LogicalResult importGemm(Importer &im) {
  if (failed(im.checkAttributes({"alpha", "beta", "transA", "transB"})))
    return failure();
  FailureOr<double> alpha = im.floatAttr("alpha", 1.0);
  FailureOr<double> beta = im.floatAttr("beta", 1.0);
  FailureOr<int64_t> transA = im.intAttr("transA", 0);
  FailureOr<int64_t> transB = im.intAttr("transB", 0);
  FailureOr<Value> a = im.inputTensor(0);
  FailureOr<Value> b = im.inputTensor(1);
  if (failed(alpha) || failed(beta) || failed(transA) || failed(transB) ||
      failed(a) || failed(b))
    return failure();
  if (*alpha != 1.0 || *beta != 1.0 || *transA)
    return im.nodeError() << "only alpha = beta = 1 and transA = 0 are "
                             "supported",
           failure();
  auto ta = cast<RankedTensorType>(a->getType());
  if (ta.getRank() != 2 || cast<RankedTensorType>(b->getType()).getRank() != 2)
    return im.nodeError() << "operands must be 2-D", failure();
  Value rhs = *b;
  if (*transB) {
    Value init = im.emptyTensor({im.dimOf(*b, 1), im.dimOf(*b, 0)},
                                ta.getElementType());
    rhs = linalg::TransposeOp::create(im.builder, im.loc, *b, init,
                                      ArrayRef<int64_t>{1, 0})
              .getResult()[0];
  }
  Value init = zeroFilled(im, {im.dimOf(*a, 0), im.dimOf(rhs, 1)},
                          ta.getElementType());
  Value mm = linalg::MatmulOp::create(im.builder, im.loc, ValueRange{*a, rhs},
                                      ValueRange{init})
                 .getResult(0);
  if (im.hasInput(2)) {
    FailureOr<TensorValue *> c = im.input(2);
    if (failed(c))
      return failure();
    ElementwiseOperand lhs{mm, {}, {}};
    FailureOr<Value> sum = im.elementwise(
        {lhs, im.operandOf(**c)}, ta.getElementType(),
        [](OpBuilder &nb, Location l, ValueRange v) -> Value {
          return arith::AddFOp::create(nb, l, v[0], v[1]);
        });
    if (failed(sum))
      return failure();
    mm = *sum;
  }
  im.setOutput(0, mm);
  return success();
}

enum class Reduction { Sum, Mean, Max, Min };

LogicalResult importReduce(Importer &im, Reduction kind) {
  if (failed(im.checkAttributes({"axes", "keepdims", "noop_with_empty_axes"})))
    return failure();
  FailureOr<Value> x = im.inputTensor(0);
  FailureOr<int64_t> keepDims = im.intAttr("keepdims", 1);
  FailureOr<int64_t> noop = im.intAttr("noop_with_empty_axes", 0);
  if (failed(x) || failed(keepDims) || failed(noop))
    return failure();
  auto type = cast<RankedTensorType>(x->getType());
  SmallVector<int64_t> axes;
  if (im.hasInput(1)) {
    FailureOr<TensorValue *> in = im.input(1);
    if (failed(in))
      return failure();
    std::optional<SmallVector<int64_t>> ints = im.constantInts(**in);
    if (!ints)
      return im.nodeError() << "axes must be constant", failure();
    axes = *ints;
  } else if (im.attribute("axes")) {
    FailureOr<SmallVector<int64_t>> a = im.intsAttr("axes", std::nullopt);
    if (failed(a))
      return failure();
    axes = *a;
  }
  if (axes.empty() && *noop) {
    im.setOutput(0, *x);
    return success();
  }
  llvm::SmallBitVector reduced(type.getRank(), axes.empty());
  for (int64_t axis : axes) {
    FailureOr<int64_t> a = im.normalizeAxis(axis, type.getRank());
    if (failed(a))
      return failure();
    reduced.set(*a);
  }
  Type element = type.getElementType();
  if (!isa<FloatType>(element))
    return im.nodeError() << "only float reductions are supported", failure();
  auto floatType = cast<FloatType>(element);
  SmallVector<OpFoldResult> outShape;
  SmallVector<AffineExpr> outExprs;
  SmallVector<utils::IteratorType> iterators;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    if (reduced.test(d)) {
      iterators.push_back(utils::IteratorType::reduction);
      continue;
    }
    iterators.push_back(utils::IteratorType::parallel);
    outShape.push_back(im.dimOf(*x, d));
    outExprs.push_back(im.builder.getAffineDimExpr(d));
  }
  APFloat initValue =
      kind == Reduction::Max
          ? APFloat::getInf(floatType.getFloatSemantics(), /*Negative=*/true)
      : kind == Reduction::Min
          ? APFloat::getInf(floatType.getFloatSemantics(), false)
          : APFloat::getZero(floatType.getFloatSemantics());
  Value init =
      im.filledTensor(outShape, im.builder.getFloatAttr(element, initValue));
  SmallVector<AffineMap> maps = {
      im.builder.getMultiDimIdentityMap(type.getRank()),
      AffineMap::get(type.getRank(), 0, outExprs, im.context)};
  Value result =
      linalg::GenericOp::create(
          im.builder, im.loc, init.getType(), ValueRange{*x}, ValueRange{init},
          maps, iterators,
          [&](OpBuilder &nb, Location l, ValueRange args) {
            Value v;
            if (kind == Reduction::Max)
              v = arith::MaximumFOp::create(nb, l, args[0], args[1]);
            else if (kind == Reduction::Min)
              v = arith::MinimumFOp::create(nb, l, args[0], args[1]);
            else
              v = arith::AddFOp::create(nb, l, args[0], args[1]);
            linalg::YieldOp::create(nb, l, v);
          })
          .getResult(0);
  if (kind == Reduction::Mean) {
    // Divide by the number of reduced elements.
    int64_t known = 1;
    Value dynamic;
    for (int64_t d = 0; d < type.getRank(); ++d) {
      if (!reduced.test(d))
        continue;
      if (!type.isDynamicDim(d)) {
        known = mulWrap(known, type.getDimSize(d));
        continue;
      }
      Value v = im.toIndex(im.dimOf(*x, d));
      dynamic = dynamic ? Value(arith::MulIOp::create(im.builder, im.loc,
                                                      dynamic, v))
                        : v;
    }
    SmallVector<ElementwiseOperand> operands = {{result, {}, {}}};
    Value dynamicCount;
    if (dynamic) {
      Value n = arith::MulIOp::create(im.builder, im.loc, dynamic,
                                      im.indexConstant(known));
      Value i64 = arith::IndexCastOp::create(im.builder, im.loc,
                                             im.builder.getI64Type(), n);
      dynamicCount = arith::SIToFPOp::create(im.builder, im.loc, element, i64);
    }
    FailureOr<Value> mean = im.elementwise(
        operands, element, [&](OpBuilder &nb, Location l, ValueRange v) {
          Value n = dynamicCount
                        ? dynamicCount
                        : Value(arith::ConstantOp::create(
                              nb, l, nb.getFloatAttr(element, double(known))));
          return arith::DivFOp::create(nb, l, v[0], n).getResult();
        });
    if (failed(mean))
      return failure();
    result = *mean;
  }
  if (*keepDims) {
    SmallVector<OpFoldResult> kept;
    for (int64_t d = 0, next = 0; d < type.getRank(); ++d)
      kept.push_back(reduced.test(d) ? OpFoldResult(im.builder.getIndexAttr(1))
                                     : im.dimOf(result, next++));
    result = im.reshape(result, kept);
  }
  im.setOutput(0, result);
  return success();
}

LogicalResult importSoftmax(Importer &im) {
  if (failed(im.checkAttributes({"axis"})))
    return failure();
  FailureOr<Value> x = im.inputTensor(0);
  FailureOr<int64_t> axis = im.intAttr("axis", im.opset >= 13 ? -1 : 1);
  if (failed(x) || failed(axis))
    return failure();
  auto type = cast<RankedTensorType>(x->getType());
  if (!isa<FloatType>(type.getElementType()))
    return im.nodeError() << "expects a float operand", failure();
  FailureOr<int64_t> a = im.normalizeAxis(*axis, type.getRank());
  if (failed(a))
    return failure();
  if (im.opset < 13 && *a != type.getRank() - 1)
    return im.nodeError() << "Softmax before opset 13 is supported only on "
                             "the last axis",
           failure();
  // Decomposed as linalg does it (max, exp of the difference, sum,
  // divide): both the CPU lowering and kvc-raise-attention read that form,
  // and no upstream pass decomposes linalg.softmax.
  Value init = im.emptyTensor(im.dimsOf(*x), type.getElementType());
  auto softmax =
      linalg::SoftmaxOp::create(im.builder, im.loc, type, *x, init, *a);
  FailureOr<SmallVector<Value>> parts =
      softmax.decomposeOperation(im.builder);
  if (failed(parts) || parts->size() != 1)
    return im.nodeError() << "cannot decompose the softmax", failure();
  softmax.erase();
  im.setOutput(0, parts->front());
  return success();
}

} // namespace

void addContractionOps(OpTable &table) {
  table["MatMul"] = importMatMul;
  table["Gemm"] = importGemm;
  table["ReduceSum"] = [](Importer &im) {
    return importReduce(im, Reduction::Sum);
  };
  table["ReduceMean"] = [](Importer &im) {
    return importReduce(im, Reduction::Mean);
  };
  table["ReduceMax"] = [](Importer &im) {
    return importReduce(im, Reduction::Max);
  };
  table["ReduceMin"] = [](Importer &im) {
    return importReduce(im, Reduction::Min);
  };
  table["Softmax"] = importSoftmax;
}

} // namespace onnx_import
} // namespace kvc
