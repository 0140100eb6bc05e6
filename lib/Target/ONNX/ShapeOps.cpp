//===- ShapeOps.cpp - shape arithmetic and data movement ------------------===//
//
// Shape, Reshape, Unsqueeze, Squeeze, Flatten, Concat, Transpose, Expand,
// Slice and Identity. On the small
// integer tensors of shape arithmetic they work on the known elements
// (Importer.h); on real tensors they become tensor.collapse/expand_shape,
// tensor.concat, linalg.transpose, linalg.broadcast, tensor.extract_slice.
//
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

#include "llvm/Support/MathExtras.h"

#include <cmath>

using namespace mlir;

namespace kvc {
namespace onnx_import {

/// Small rank-0/1 integer results are kept as elements, up to this length.
/// Whether a static shape's element count fits in int64 (types beyond it
/// break every size computation downstream).
LogicalResult checkElementCount(Importer &im, ArrayRef<OpFoldResult> dims) {
  int64_t count = 1;
  for (OpFoldResult d : dims) {
    std::optional<int64_t> c = getConstantIntValue(d);
    if (!c)
      continue;
    if (*c < 0 || llvm::MulOverflow(count, *c, count))
      return im.nodeError() << "the result shape has more elements than "
                               "fit in 64 bits",
             failure();
  }
  return success();
}

TensorValue elementsValue(ArrayRef<OpFoldResult> elems, Type element,
                          bool scalar) {
  TensorValue value;
  value.type = RankedTensorType::get(
      scalar ? ArrayRef<int64_t>{} : ArrayRef<int64_t>{int64_t(elems.size())},
      element);
  value.elems = SmallVector<OpFoldResult>(elems.begin(), elems.end());
  return value;
}

/// The elements of input `i`, which must be known at import time.
FailureOr<SmallVector<OpFoldResult>> requiredElements(Importer &im, unsigned i,
                                                      StringRef what) {
  FailureOr<TensorValue *> in = im.input(i);
  if (failed(in))
    return failure();
  std::optional<SmallVector<OpFoldResult>> elems = im.elementsOf(**in);
  if (!elems)
    return im.nodeError() << what
                          << " must be a small integer tensor computable at "
                             "import time (a constant or shape arithmetic)",
           failure();
  return *elems;
}

FailureOr<SmallVector<int64_t>> requiredInts(Importer &im, unsigned i,
                                             StringRef what) {
  FailureOr<TensorValue *> in = im.input(i);
  if (failed(in))
    return failure();
  std::optional<SmallVector<int64_t>> ints = im.constantInts(**in);
  if (!ints)
    return im.nodeError() << what << " must be constant", failure();
  return *ints;
}

namespace {

/// Axes from the input `index` (newer opsets) or the `axes` attribute.
FailureOr<SmallVector<int64_t>> axesOf(Importer &im, unsigned index,
                                       std::optional<SmallVector<int64_t>> dflt) {
  if (im.hasInput(index))
    return requiredInts(im, index, "axes");
  return im.intsAttr("axes", dflt);
}

LogicalResult importShape(Importer &im) {
  if (failed(im.checkAttributes({"start", "end"})))
    return failure();
  FailureOr<Value> x = im.inputTensor(0);
  FailureOr<int64_t> start = im.intAttr("start", 0);
  if (failed(x) || failed(start))
    return failure();
  int64_t rank = cast<RankedTensorType>(x->getType()).getRank();
  FailureOr<int64_t> end = im.intAttr("end", rank);
  if (failed(end))
    return failure();
  auto clampAxis = [&](int64_t a) {
    return std::clamp<int64_t>(a < 0 ? a + rank : a, 0, rank);
  };
  SmallVector<OpFoldResult> elems;
  for (int64_t d = clampAxis(*start); d < clampAxis(*end); ++d) {
    OpFoldResult dim = im.dimOf(*x, d);
    if (auto attr = dyn_cast<Attribute>(dim))
      dim = im.builder.getI64IntegerAttr(cast<IntegerAttr>(attr).getInt());
    elems.push_back(dim);
  }
  im.setOutput(0, elementsValue(elems, im.builder.getI64Type(), false));
  return success();
}

/// Whether two index values are the same dim: the same value, or
/// tensor.dim of the same tensor and dim (possibly through index casts).
bool sameDim(Value a, Value b) {
  auto strip = [](Value v) {
    while (auto cast = v.getDefiningOp<arith::IndexCastOp>())
      v = cast.getIn();
    return v;
  };
  a = strip(a);
  b = strip(b);
  if (a == b)
    return true;
  auto da = a.getDefiningOp<tensor::DimOp>();
  auto db = b.getDefiningOp<tensor::DimOp>();
  if (!da || !db || da.getSource() != db.getSource())
    return false;
  std::optional<int64_t> ia = da.getConstantIndex(), ib = db.getConstantIndex();
  return ia && ib && *ia == *ib;
}

/// Output dims of Reshape: 0 copies the input dim, -1 is inferred.
FailureOr<SmallVector<OpFoldResult>>
reshapeDims(Importer &im, Value x, ArrayRef<OpFoldResult> target,
            bool allowZero) {
  auto type = cast<RankedTensorType>(x.getType());
  SmallVector<OpFoldResult> dims;
  int64_t inferred = -1;
  for (auto [i, t] : llvm::enumerate(target)) {
    std::optional<int64_t> c = getConstantIntValue(t);
    if (c && *c == 0 && !allowZero) {
      if (int64_t(i) >= type.getRank())
        return im.nodeError() << "shape entry " << i
                              << " copies a dim the input does not have",
               failure();
      dims.push_back(im.dimOf(x, i));
    } else if (c && *c == -1) {
      if (inferred >= 0)
        return im.nodeError() << "more than one -1 in the shape", failure();
      inferred = i;
      dims.push_back(OpFoldResult());
    } else if (c && *c < 0) {
      return im.nodeError() << "invalid shape entry " << *c, failure();
    } else {
      dims.push_back(c ? OpFoldResult(im.builder.getIndexAttr(*c)) : t);
    }
  }
  if (inferred < 0)
    return dims;
  // -1: the input's element count divided by the other entries, with the
  // dynamic dims both sides share (the same tensor.dim) cancelled, so that
  // reshapes of dynamic tensors by their own Shape stay static where they
  // can.
  SmallVector<OpFoldResult> inDims = im.dimsOf(x);
  SmallVector<OpFoldResult> outDims;
  for (auto [i, d] : llvm::enumerate(dims))
    if (int64_t(i) != inferred)
      outDims.push_back(d);
  int64_t inKnown = 1, outKnown = 1;
  SmallVector<Value> inDynamic, outDynamic;
  for (OpFoldResult d : inDims) {
    if (std::optional<int64_t> c = getConstantIntValue(d))
      inKnown = mulWrap(inKnown, *c);
    else
      inDynamic.push_back(cast<Value>(d));
  }
  for (OpFoldResult d : outDims) {
    if (std::optional<int64_t> c = getConstantIntValue(d))
      outKnown = mulWrap(outKnown, *c);
    else
      outDynamic.push_back(im.toIndex(d));
  }
  for (auto it = outDynamic.begin(); it != outDynamic.end();) {
    auto match = llvm::find_if(
        inDynamic, [&](Value in) { return sameDim(in, *it); });
    if (match == inDynamic.end()) {
      ++it;
      continue;
    }
    inDynamic.erase(match);
    it = outDynamic.erase(it);
  }
  if (inDynamic.empty() && outDynamic.empty()) {
    if (outKnown == 0 || inKnown % outKnown != 0)
      return im.nodeError() << "cannot reshape " << inKnown
                            << " elements into the requested shape",
             failure();
    dims[inferred] = im.builder.getIndexAttr(inKnown / outKnown);
    return dims;
  }
  Value total = im.indexConstant(inKnown);
  for (Value d : inDynamic)
    total = arith::MulIOp::create(im.builder, im.loc, total, d);
  Value others = im.indexConstant(outKnown);
  for (Value d : outDynamic)
    others = arith::MulIOp::create(im.builder, im.loc, others, d);
  dims[inferred] =
      arith::DivUIOp::create(im.builder, im.loc, total, others).getResult();
  return dims;
}

LogicalResult importReshape(Importer &im) {
  if (failed(im.checkAttributes({"allowzero"})))
    return failure();
  FailureOr<TensorValue *> data = im.input(0);
  FailureOr<SmallVector<OpFoldResult>> target =
      requiredElements(im, 1, "the shape");
  FailureOr<int64_t> allowZero = im.intAttr("allowzero", 0);
  if (failed(data) || failed(target) || failed(allowZero))
    return failure();
  // Shape arithmetic: a rank-0/1 tensor with known elements stays known.
  if (std::optional<SmallVector<OpFoldResult>> elems = im.elementsOf(**data);
      elems && target->size() <= 1) {
    im.setOutput(0, elementsValue(*elems, (*data)->type.getElementType(),
                                  target->empty()));
    return success();
  }
  Value x = im.materialize(**data);
  FailureOr<SmallVector<OpFoldResult>> dims =
      reshapeDims(im, x, *target, *allowZero != 0);
  if (failed(dims) || failed(checkElementCount(im, *dims)))
    return failure();
  im.setOutput(0, im.reshape(x, *dims));
  return success();
}

LogicalResult importUnsqueeze(Importer &im) {
  if (failed(im.checkAttributes({"axes"})))
    return failure();
  FailureOr<TensorValue *> data = im.input(0);
  FailureOr<SmallVector<int64_t>> axes = axesOf(im, 1, std::nullopt);
  if (failed(data) || failed(axes))
    return failure();
  int64_t rank = (*data)->type.getRank() + int64_t(axes->size());
  llvm::SmallBitVector inserted(rank);
  for (int64_t axis : *axes) {
    FailureOr<int64_t> a = im.normalizeAxis(axis, rank);
    if (failed(a))
      return failure();
    if (inserted.test(*a))
      return im.nodeError() << "axis " << axis << " is repeated", failure();
    inserted.set(*a);
  }
  if (std::optional<SmallVector<OpFoldResult>> elems = im.elementsOf(**data);
      elems && rank <= 1) {
    im.setOutput(0, elementsValue(*elems, (*data)->type.getElementType(),
                                  rank == 0));
    return success();
  }
  Value x = im.materialize(**data);
  SmallVector<OpFoldResult> dims;
  for (int64_t d = 0, next = 0; d < rank; ++d)
    dims.push_back(inserted.test(d) ? OpFoldResult(im.builder.getIndexAttr(1))
                                    : im.dimOf(x, next++));
  im.setOutput(0, im.reshape(x, dims));
  return success();
}

LogicalResult importSqueeze(Importer &im) {
  if (failed(im.checkAttributes({"axes"})))
    return failure();
  FailureOr<TensorValue *> data = im.input(0);
  if (failed(data))
    return failure();
  RankedTensorType type = (*data)->type;
  FailureOr<SmallVector<int64_t>> axes = axesOf(im, 1, SmallVector<int64_t>{});
  if (failed(axes))
    return failure();
  llvm::SmallBitVector removed(type.getRank());
  if (axes->empty()) {
    for (int64_t d = 0; d < type.getRank(); ++d)
      if (type.getDimSize(d) == 1)
        removed.set(d);
  }
  for (int64_t axis : *axes) {
    FailureOr<int64_t> a = im.normalizeAxis(axis, type.getRank());
    if (failed(a))
      return failure();
    if (!type.isDynamicDim(*a) && type.getDimSize(*a) != 1)
      return im.nodeError() << "cannot squeeze dim " << *a << " of size "
                            << type.getDimSize(*a),
             failure();
    removed.set(*a);
  }
  int64_t rank = type.getRank() - removed.count();
  if (std::optional<SmallVector<OpFoldResult>> elems = im.elementsOf(**data);
      elems && rank <= 1) {
    im.setOutput(0, elementsValue(*elems, type.getElementType(), rank == 0));
    return success();
  }
  Value x = im.materialize(**data);
  SmallVector<OpFoldResult> dims;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (!removed.test(d))
      dims.push_back(im.dimOf(x, d));
  im.setOutput(0, im.reshape(x, dims));
  return success();
}

LogicalResult importFlatten(Importer &im) {
  if (failed(im.checkAttributes({"axis"})))
    return failure();
  FailureOr<Value> x = im.inputTensor(0);
  FailureOr<int64_t> axis = im.intAttr("axis", 1);
  if (failed(x) || failed(axis))
    return failure();
  int64_t rank = cast<RankedTensorType>(x->getType()).getRank();
  int64_t a = *axis < 0 ? *axis + rank : *axis;
  if (a < 0 || a > rank)
    return im.nodeError() << "axis " << *axis << " is out of range", failure();
  auto product = [&](int64_t from, int64_t to) -> OpFoldResult {
    int64_t known = 1;
    Value dynamic;
    for (int64_t d = from; d < to; ++d) {
      OpFoldResult dim = im.dimOf(*x, d);
      if (std::optional<int64_t> c = getConstantIntValue(dim)) {
        known = mulWrap(known, *c);
        continue;
      }
      Value v = im.toIndex(dim);
      dynamic = dynamic ? Value(arith::MulIOp::create(im.builder, im.loc,
                                                      dynamic, v))
                        : v;
    }
    if (!dynamic)
      return im.builder.getIndexAttr(known);
    return arith::MulIOp::create(im.builder, im.loc, dynamic,
                                 im.indexConstant(known))
        .getResult();
  };
  im.setOutput(0, im.reshape(*x, {product(0, a), product(a, rank)}));
  return success();
}

LogicalResult importConcat(Importer &im) {
  if (failed(im.checkAttributes({"axis"})))
    return failure();
  FailureOr<int64_t> axis = im.intAttr("axis", std::nullopt);
  if (failed(axis))
    return failure();
  SmallVector<TensorValue *> inputs;
  for (unsigned i = 0; i < im.numInputs(); ++i) {
    FailureOr<TensorValue *> in = im.input(i);
    if (failed(in))
      return failure();
    inputs.push_back(*in);
  }
  if (inputs.empty())
    return im.nodeError() << "needs at least one input", failure();
  RankedTensorType first = inputs.front()->type;
  if (first.getRank() == 0)
    return im.nodeError() << "cannot concatenate scalars", failure();
  for (TensorValue *in : inputs)
    if (in->type.getRank() != first.getRank() ||
        in->type.getElementType() != first.getElementType())
      return im.nodeError() << "inputs differ in rank or element type",
             failure();
  FailureOr<int64_t> a = im.normalizeAxis(*axis, first.getRank());
  if (failed(a))
    return failure();
  for (TensorValue *in : inputs)
    for (int64_t d = 0; d < first.getRank(); ++d)
      if (d != *a && !first.isDynamicDim(d) && !in->type.isDynamicDim(d) &&
          in->type.getDimSize(d) != first.getDimSize(d))
        return im.nodeError() << "inputs differ in dim " << d, failure();
  if (first.getRank() == 1) {
    SmallVector<OpFoldResult> all;
    bool known = true;
    for (TensorValue *in : inputs) {
      std::optional<SmallVector<OpFoldResult>> elems = im.elementsOf(*in);
      if (!elems) {
        known = false;
        break;
      }
      all.append(elems->begin(), elems->end());
    }
    if (known && int64_t(all.size()) <= kMaxKnownElements) {
      im.setOutput(0, elementsValue(all, first.getElementType(), false));
      return success();
    }
  }
  if (inputs.size() == 1) {
    im.setOutput(0, *inputs.front());
    return success();
  }
  SmallVector<Value> tensors;
  for (TensorValue *in : inputs)
    tensors.push_back(im.materialize(*in));
  im.setOutput(0, tensor::ConcatOp::create(im.builder, im.loc, *a, tensors)
                      .getResult());
  return success();
}

LogicalResult importTranspose(Importer &im) {
  if (failed(im.checkAttributes({"perm"})))
    return failure();
  FailureOr<TensorValue *> data = im.input(0);
  if (failed(data))
    return failure();
  int64_t rank = (*data)->type.getRank();
  SmallVector<int64_t> reversed;
  for (int64_t d = rank - 1; d >= 0; --d)
    reversed.push_back(d);
  FailureOr<SmallVector<int64_t>> perm = im.intsAttr("perm", reversed);
  if (failed(perm))
    return failure();
  llvm::SmallBitVector seen(rank);
  if (int64_t(perm->size()) != rank)
    return im.nodeError() << "perm is not a permutation of the dims",
           failure();
  for (int64_t p : *perm) {
    if (p < 0 || p >= rank || seen.test(p))
      return im.nodeError() << "perm is not a permutation of the dims",
             failure();
    seen.set(p);
  }
  if (rank <= 1) {
    im.setOutput(0, **data);
    return success();
  }
  Value x = im.materialize(**data);
  SmallVector<OpFoldResult> dims;
  for (int64_t p : *perm)
    dims.push_back(im.dimOf(x, p));
  Value init = im.emptyTensor(dims, (*data)->type.getElementType());
  im.setOutput(0, linalg::TransposeOp::create(im.builder, im.loc, x, init,
                                              *perm)
                      .getResult()[0]);
  return success();
}

LogicalResult importExpand(Importer &im) {
  FailureOr<TensorValue *> data = im.input(0);
  FailureOr<SmallVector<OpFoldResult>> shape =
      requiredElements(im, 1, "the shape");
  if (failed(data) || failed(shape))
    return failure();
  SmallVector<OpFoldResult> dims;
  for (OpFoldResult s : *shape) {
    std::optional<int64_t> c = getConstantIntValue(s);
    if (c && *c < 0)
      return im.nodeError() << "invalid shape entry " << *c, failure();
    dims.push_back(c ? OpFoldResult(im.builder.getIndexAttr(*c))
                     : OpFoldResult(im.toIndex(s)));
  }
  if (failed(checkElementCount(im, dims)))
    return failure();
  // A splat stays a (bigger) splat.
  if (TypedAttr splat = im.splatOf(**data)) {
    SmallVector<int64_t> outShape;
    int64_t rank = std::max<int64_t>((*data)->type.getRank(), dims.size());
    bool isStatic = true;
    for (int64_t d = 0; d < rank; ++d) {
      int64_t i = d - (rank - (*data)->type.getRank());
      int64_t j = d - (rank - int64_t(dims.size()));
      int64_t in = i >= 0 ? (*data)->type.getDimSize(i) : 1;
      std::optional<int64_t> t =
          j >= 0 ? getConstantIntValue(dims[j]) : std::optional<int64_t>(1);
      if (!t) {
        isStatic = false;
        break;
      }
      outShape.push_back(*t == 1 ? in : *t);
    }
    if (isStatic) {
      TensorValue value;
      value.type =
          RankedTensorType::get(outShape, (*data)->type.getElementType());
      value.constant = DenseElementsAttr::get(value.type, splat);
      im.setOutput(0, value);
      return success();
    }
  }
  FailureOr<Value> result = im.broadcastTo(im.materialize(**data), dims);
  if (failed(result))
    return failure();
  im.setOutput(0, *result);
  return success();
}

/// Clamped start and size of one sliced axis (ONNX Slice rules).
struct SliceRange {
  OpFoldResult start, size;
};

FailureOr<SliceRange> sliceRange(Importer &im, OpFoldResult dim,
                                 OpFoldResult startOfr, OpFoldResult endOfr,
                                 int64_t step) {
  std::optional<int64_t> d = getConstantIntValue(dim);
  std::optional<int64_t> s = getConstantIntValue(startOfr);
  std::optional<int64_t> e = getConstantIntValue(endOfr);
  if (d && s && e) {
    auto clamp = [&](int64_t v) {
      if (v < 0)
        v += *d;
      return std::clamp<int64_t>(v, 0, *d);
    };
    int64_t start = clamp(*s), end = clamp(*e);
    int64_t size = end > start ? (end - start - 1) / step + 1 : 0;
    return SliceRange{im.builder.getIndexAttr(start),
                      im.builder.getIndexAttr(size)};
  }
  // Dynamic: negative constants count from the end, ends clamp to the dim.
  OpBuilder &b = im.builder;
  Value dimV = im.toIndex(dim);
  auto bound = [&](OpFoldResult v) -> Value {
    std::optional<int64_t> c = getConstantIntValue(v);
    if (c && *c < 0)
      return arith::AddIOp::create(b, im.loc, dimV,
                                   im.indexConstant(std::max<int64_t>(*c, -(int64_t(1) << 62))));
    if (c && *c > (int64_t(1) << 62))
      return dimV;
    Value x = im.toIndex(v);
    return arith::MinSIOp::create(b, im.loc, x, dimV);
  };
  Value start = bound(startOfr), end = bound(endOfr);
  Value zero = im.indexConstant(0);
  start = arith::MaxSIOp::create(b, im.loc, start, zero);
  Value len = arith::SubIOp::create(b, im.loc, end, start);
  len = arith::MaxSIOp::create(b, im.loc, len, zero);
  if (step != 1) {
    Value stepV = im.indexConstant(step);
    len = arith::CeilDivSIOp::create(b, im.loc, len, stepV);
  }
  return SliceRange{start, len};
}

LogicalResult importSlice(Importer &im) {
  if (failed(im.checkAttributes({})))
    return failure();
  FailureOr<TensorValue *> data = im.input(0);
  FailureOr<SmallVector<OpFoldResult>> starts =
      requiredElements(im, 1, "starts");
  FailureOr<SmallVector<OpFoldResult>> ends = requiredElements(im, 2, "ends");
  if (failed(data) || failed(starts) || failed(ends))
    return failure();
  int64_t rank = (*data)->type.getRank();
  SmallVector<int64_t> axes, steps;
  if (im.hasInput(3)) {
    FailureOr<SmallVector<int64_t>> a = requiredInts(im, 3, "axes");
    if (failed(a))
      return failure();
    axes = *a;
  } else {
    for (size_t i = 0; i < starts->size(); ++i)
      axes.push_back(i);
  }
  if (im.hasInput(4)) {
    FailureOr<SmallVector<int64_t>> s = requiredInts(im, 4, "steps");
    if (failed(s))
      return failure();
    steps = *s;
  } else {
    steps.assign(starts->size(), 1);
  }
  if (ends->size() != starts->size() || axes.size() != starts->size() ||
      steps.size() != starts->size())
    return im.nodeError() << "starts, ends, axes and steps differ in length",
           failure();

  // Known elements of a 1-D tensor slice into known elements.
  std::optional<SmallVector<OpFoldResult>> elems = im.elementsOf(**data);
  Value x = elems ? Value() : im.materialize(**data);
  auto dimOf = [&](int64_t d) -> OpFoldResult {
    if (x)
      return im.dimOf(x, d);
    return im.builder.getIndexAttr(elems->size());
  };
  SmallVector<OpFoldResult> offsets(rank, im.builder.getIndexAttr(0));
  SmallVector<OpFoldResult> sizes, strides(rank, im.builder.getIndexAttr(1));
  for (int64_t d = 0; d < rank; ++d)
    sizes.push_back(dimOf(d));
  for (auto [i, axis] : llvm::enumerate(axes)) {
    FailureOr<int64_t> a = im.normalizeAxis(axis, rank);
    if (failed(a))
      return failure();
    if (steps[i] <= 0)
      return im.nodeError() << "step " << steps[i]
                            << " is not supported (only positive steps)",
             failure();
    FailureOr<SliceRange> range =
        sliceRange(im, dimOf(*a), (*starts)[i], (*ends)[i], steps[i]);
    if (failed(range))
      return failure();
    offsets[*a] = range->start;
    sizes[*a] = range->size;
    strides[*a] = im.builder.getIndexAttr(steps[i]);
  }
  if (elems) {
    std::optional<int64_t> start = getConstantIntValue(offsets[0]);
    std::optional<int64_t> size = getConstantIntValue(sizes[0]);
    if (start && size) {
      SmallVector<OpFoldResult> out;
      for (int64_t k = 0; k < *size; ++k)
        out.push_back((*elems)[*start + k * steps[0]]);
      im.setOutput(0, elementsValue(out, (*data)->type.getElementType(),
                                    false));
      return success();
    }
    x = im.materialize(**data);
  }
  im.setOutput(0, tensor::ExtractSliceOp::create(im.builder, im.loc, x,
                                                 offsets, sizes, strides)
                      .getResult());
  return success();
}

LogicalResult importIdentity(Importer &im) {
  FailureOr<TensorValue *> in = im.input(0);
  if (failed(in))
    return failure();
  im.setOutput(0, **in);
  return success();
}

} // namespace

void addShapeOps(OpTable &table) {
  table["Shape"] = importShape;
  table["Reshape"] = importReshape;
  table["Unsqueeze"] = importUnsqueeze;
  table["Squeeze"] = importSqueeze;
  table["Flatten"] = importFlatten;
  table["Concat"] = importConcat;
  table["Transpose"] = importTranspose;
  table["Expand"] = importExpand;
  table["Slice"] = importSlice;
  table["Identity"] = importIdentity;
}

} // namespace onnx_import
} // namespace kvc
