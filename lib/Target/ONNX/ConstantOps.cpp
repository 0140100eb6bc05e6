//===- ConstantOps.cpp - Constant, ConstantOfShape, Range -----------------===//
//
// Ops that make tensors from attributes and scalars. Static results stay
// known at import time (a splat or a small constant), so the shape
// arithmetic built on them folds; dynamic ones become linalg.fill or a
// linalg.generic over linalg.index.
//
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;

namespace kvc {
namespace onnx_import {
namespace {

LogicalResult importConstant(Importer &im) {
  if (im.node->attribute_size() != 1)
    return im.nodeError() << "expects exactly one value attribute", failure();
  const onnx::AttributeProto &attr = im.node->attribute(0);
  Builder &b = im.builder;
  TensorValue value;
  if (attr.name() == "value") {
    FailureOr<DenseElementsAttr> data =
        decodeTensor(im.context, attr.t(), "", [&] { return im.nodeError(); });
    if (failed(data))
      return failure();
    value.constant = *data;
  } else if (attr.name() == "value_float") {
    value.constant = DenseElementsAttr::get(
        RankedTensorType::get({}, b.getF32Type()), attr.f());
  } else if (attr.name() == "value_int") {
    value.constant = DenseElementsAttr::get(
        RankedTensorType::get({}, b.getI64Type()), attr.i());
  } else if (attr.name() == "value_floats") {
    SmallVector<float> v(attr.floats().begin(), attr.floats().end());
    value.constant = DenseElementsAttr::get(
        RankedTensorType::get({int64_t(v.size())}, b.getF32Type()),
        ArrayRef<float>(v));
  } else if (attr.name() == "value_ints") {
    SmallVector<int64_t> v(attr.ints().begin(), attr.ints().end());
    value.constant = DenseElementsAttr::get(
        RankedTensorType::get({int64_t(v.size())}, b.getI64Type()),
        ArrayRef<int64_t>(v));
  } else {
    return im.nodeError() << "unsupported attribute '" << attr.name() << "'";
  }
  value.type = cast<RankedTensorType>(value.constant.getType());
  im.setOutput(0, value);
  return success();
}

LogicalResult importConstantOfShape(Importer &im) {
  if (failed(im.checkAttributes({"value"})))
    return failure();
  FailureOr<SmallVector<OpFoldResult>> shape =
      requiredElements(im, 0, "the shape");
  if (failed(shape))
    return failure();
  TypedAttr fill = im.builder.getF32FloatAttr(0.0f);
  if (const onnx::AttributeProto *attr = im.attribute("value")) {
    FailureOr<DenseElementsAttr> data = decodeTensor(
        im.context, attr->t(), "", [&] { return im.nodeError(); });
    if (failed(data))
      return failure();
    if (data->getNumElements() != 1)
      return im.nodeError() << "'value' must hold one element", failure();
    fill = cast<TypedAttr>(*data->getValues<Attribute>().begin());
  }
  SmallVector<OpFoldResult> dims;
  SmallVector<int64_t> staticShape;
  for (OpFoldResult s : *shape) {
    std::optional<int64_t> c = getConstantIntValue(s);
    if (c && *c < 0)
      return im.nodeError() << "negative dim " << *c, failure();
    dims.push_back(c ? OpFoldResult(im.builder.getIndexAttr(*c))
                     : OpFoldResult(im.toIndex(s)));
    staticShape.push_back(c ? *c : ShapedType::kDynamic);
  }
  if (failed(checkElementCount(im, dims)))
    return failure();
  auto type = RankedTensorType::get(staticShape, fill.getType());
  if (type.hasStaticShape()) {
    TensorValue value;
    value.type = type;
    value.constant = DenseElementsAttr::get(type, fill);
    im.setOutput(0, value);
    return success();
  }
  im.setOutput(0, im.filledTensor(dims, fill));
  return success();
}

LogicalResult importRange(Importer &im) {
  SmallVector<TensorValue *> in;
  for (unsigned i = 0; i < 3; ++i) {
    FailureOr<TensorValue *> v = im.input(i);
    if (failed(v))
      return failure();
    if (!v.value()->type.hasStaticShape() ||
        v.value()->type.getNumElements() != 1)
      return im.nodeError() << "start, limit and delta must be scalars",
             failure();
    in.push_back(*v);
  }
  Type element = in[0]->type.getElementType();
  if (!element.isInteger(64) && !element.isInteger(32) && !element.isF32())
    return im.nodeError() << "unsupported element type " << element,
           failure();
  // All constant: a constant tensor (its elements stay known).
  if (element.isInteger()) {
    auto s = im.constantInts(*in[0]), l = im.constantInts(*in[1]),
         d = im.constantInts(*in[2]);
    if (s && l && d) {
      int64_t start = (*s)[0], limit = (*l)[0], delta = (*d)[0];
      if (delta == 0)
        return im.nodeError() << "delta is 0", failure();
      __int128 span = __int128(limit) - start;
      __int128 count = span / delta + (span % delta != 0 ? 1 : 0);
      int64_t n = count < 0 ? 0 : count > kMaxKnownElements ? kMaxKnownElements + 1
                                                          : int64_t(count);
      if (n <= kMaxKnownElements) {
        SmallVector<int64_t> values;
        for (int64_t k = 0; k < n; ++k)
          values.push_back(int64_t(start + __int128(k) * delta));
        TensorValue value;
        value.type = RankedTensorType::get({n}, element);
        value.constant = DenseElementsAttr::get(
            value.type, llvm::map_to_vector(values, [&](int64_t v) {
              return APInt(element.getIntOrFloatBitWidth(), v,
                           /*isSigned=*/true, /*implicitTrunc=*/true);
            }));
        im.setOutput(0, value);
        return success();
      }
    }
  }
  // Otherwise a linalg.generic over the index: start + i * delta.
  OpBuilder &b = im.builder;
  SmallVector<Value> scalars;
  for (TensorValue *v : in) {
    // Known (shape arithmetic) scalars are used directly.
    if (std::optional<SmallVector<OpFoldResult>> e = im.elementsOf(*v)) {
      Value i = im.toIndex(e->front());
      scalars.push_back(arith::IndexCastOp::create(b, im.loc, element, i));
      continue;
    }
    Value t = im.materialize(*v);
    SmallVector<Value> zeros(v->type.getRank(), im.indexConstant(0));
    scalars.push_back(tensor::ExtractOp::create(b, im.loc, t, zeros));
  }
  Value count;
  if (element.isInteger()) {
    Value s = im.toIndex(scalars[0]), l = im.toIndex(scalars[1]),
          d = im.toIndex(scalars[2]);
    Value span = arith::SubIOp::create(b, im.loc, l, s);
    count = arith::CeilDivSIOp::create(b, im.loc, span, d);
  } else {
    Value span = arith::SubFOp::create(b, im.loc, scalars[1], scalars[0]);
    Value q = arith::DivFOp::create(b, im.loc, span, scalars[2]);
    Value c = math::CeilOp::create(b, im.loc, q);
    count = arith::FPToSIOp::create(b, im.loc, b.getI64Type(), c);
    count = im.toIndex(count);
  }
  count = arith::MaxSIOp::create(b, im.loc, count, im.indexConstant(0));
  Value init = im.emptyTensor({OpFoldResult(count)}, element);
  auto generic = linalg::GenericOp::create(
      b, im.loc, init.getType(), ValueRange{}, ValueRange{init},
      ArrayRef<AffineMap>{b.getMultiDimIdentityMap(1)},
      ArrayRef<utils::IteratorType>{utils::IteratorType::parallel},
      [&](OpBuilder &nb, Location l, ValueRange) {
        Value i = linalg::IndexOp::create(nb, l, 0);
        Value v;
        if (element.isInteger()) {
          Value iv = arith::IndexCastOp::create(nb, l, element, i);
          v = arith::AddIOp::create(
              nb, l, scalars[0], arith::MulIOp::create(nb, l, iv, scalars[2]));
        } else {
          Value iv = arith::UIToFPOp::create(
              nb, l, element,
              arith::IndexCastUIOp::create(nb, l, nb.getI64Type(), i));
          v = arith::AddFOp::create(
              nb, l, scalars[0], arith::MulFOp::create(nb, l, iv, scalars[2]));
        }
        linalg::YieldOp::create(nb, l, v);
      });
  im.setOutput(0, generic.getResult(0));
  return success();
}

} // namespace

void addConstantOps(OpTable &table) {
  table["Constant"] = importConstant;
  table["ConstantOfShape"] = importConstantOfShape;
  table["Range"] = importRange;
}

} // namespace onnx_import
} // namespace kvc
