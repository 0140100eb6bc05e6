//===- AttentionOps.cpp - attention nodes -> kvc.append + kvc.attend ------===//
//
// ONNX Attention (opset 23) and com.microsoft GroupQueryAttention /
// MultiHeadAttention already say "attention over a KV cache", so they map
// straight to kvc ops, as kvc-raise-attention would produce them: the
// past_key graph input becomes a `!kvc.cache` argument (kvc.layer, kvc.name
// of past_key; past_value is folded into it), the new keys and values are
// appended, kvc.attend reads the extended cache, and present_key is
// returned as the cache (present_value is the same cache, so it is not a
// separate result). Without a past, the cache starts as kvc.cache.empty.
//
// Assumptions, as in every KV-cache runtime: the past holds exactly the
// tokens before the new ones (no padding inside the cache buffer), and
// causal masking is aligned to the end (query i sees keys up to past + i).
//
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "kvc/Dialect/KVC/IR/KVCOps.h"
#include "kvc/Dialect/KVC/IR/KVCTypes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>

using namespace mlir;

namespace kvc {
namespace onnx_import {
namespace {

/// The parts of an attention node, in kvc terms.
struct CachedAttention {
  /// batch x heads x tokens x head_dim.
  Value query, keys, values;
  /// Additive mask, broadcastable to batch x (1|q_heads) x q_len x tokens.
  Value mask;
  std::optional<double> scale;
  bool causal = false;
  double softcap = 0.0;
  /// Graph inputs with the past (both empty: no past).
  std::string pastKey, pastValue;
  /// Output indices of present_key / present_value.
  unsigned presentKeyOutput = 1, presentValueOutput = 2;
  /// Whether the output goes back to batch x tokens x (heads * dim).
  bool mergeHeads = false;
};

Value transpose0213(Importer &im, Value x) {
  auto type = cast<RankedTensorType>(x.getType());
  SmallVector<OpFoldResult> dims = {im.dimOf(x, 0), im.dimOf(x, 2),
                                    im.dimOf(x, 1), im.dimOf(x, 3)};
  Value init = im.emptyTensor(dims, type.getElementType());
  return linalg::TransposeOp::create(im.builder, im.loc, x, init,
                                     ArrayRef<int64_t>{0, 2, 1, 3})
      .getResult()[0];
}

/// batch x tokens x (heads * dim) -> batch x heads x tokens x dim.
FailureOr<Value> splitHeads(Importer &im, Value x, int64_t heads,
                            StringRef what) {
  auto type = cast<RankedTensorType>(x.getType());
  if (type.getRank() == 4)
    return x;
  if (type.getRank() != 3 || heads <= 0 || type.isDynamicDim(2) ||
      type.getDimSize(2) % heads != 0)
    return im.nodeError() << what << " must be batch x tokens x (heads * "
                          << "head_dim) with a static last dim divisible by "
                          << heads << " heads, or 4-D",
           failure();
  Value split = im.reshape(x, {im.dimOf(x, 0), im.dimOf(x, 1),
                               im.builder.getIndexAttr(heads),
                               im.builder.getIndexAttr(type.getDimSize(2) /
                                                       heads)});
  return transpose0213(im, split);
}

/// A boolean mask (true: keep) as an additive one.
Value additiveMask(Importer &im, Value mask, Type element) {
  auto type = cast<RankedTensorType>(mask.getType());
  if (!type.getElementType().isInteger(1))
    return mask;
  auto floatType = cast<FloatType>(element);
  APFloat ninf =
      APFloat::getInf(floatType.getFloatSemantics(), /*Negative=*/true);
  ElementwiseOperand operand{mask, {}, {}};
  return *im.elementwise(
      {operand}, element, [&](OpBuilder &b, Location l, ValueRange v) {
        Value zero = arith::ConstantOp::create(b, l, b.getFloatAttr(element, 0));
        Value masked =
            arith::ConstantOp::create(b, l, b.getFloatAttr(element, ninf));
        return arith::SelectOp::create(b, l, v[0], zero, masked).getResult();
      });
}

LogicalResult emitCachedAttention(Importer &im, CachedAttention &a) {
  auto qType = cast<RankedTensorType>(a.query.getType());
  auto kType = cast<RankedTensorType>(a.keys.getType());
  Type element = qType.getElementType();
  if (!isa<FloatType>(element) || kType.getElementType() != element)
    return im.nodeError() << "query, keys and values must share a float type",
           failure();
  if (kType.isDynamicDim(1) || kType.isDynamicDim(3))
    return im.nodeError() << "KV heads and head_dim must be static", failure();
  MLIRContext *ctx = im.context;
  SmallVector<int64_t> shape = {kType.getDimSize(0), kType.getDimSize(1),
                                ShapedType::kDynamic, kType.getDimSize(3)};
  auto cacheType = mlir::kvc::CacheType::get(ctx, shape, element,
                                             mlir::kvc::EncodingAttr());
  OpBuilder &b = im.builder;
  Value cache;
  if (!a.pastKey.empty()) {
    BlockArgument pastKey = im.graphInputArgument(a.pastKey);
    BlockArgument pastValue = im.graphInputArgument(a.pastValue);
    if (!pastKey || !pastValue)
      return im.nodeError() << "past_key and past_value must be graph inputs",
             failure();
    auto pastType = cast<RankedTensorType>(pastKey.getType());
    if (pastType.getRank() != 4 || pastValue.getType() != pastType ||
        pastType.getDimSize(1) != shape[1] ||
        pastType.getDimSize(3) != shape[3])
      return im.nodeError() << "past_key/past_value must be batch x "
                            << shape[1] << " x past x " << shape[3]
                            << ", like the new keys",
             failure();
    DictionaryAttr attrs = b.getDictionaryAttr(
        {b.getNamedAttr("kvc.layer", b.getI64IntegerAttr(im.numCacheLayers)),
         b.getNamedAttr("kvc.name", b.getStringAttr(a.pastKey))});
    cache = im.insertArgument(pastKey, cacheType, attrs);
    im.replacedArguments.insert(pastKey);
    im.replacedArguments.insert(pastValue);
  } else {
    SmallVector<Value> dynamic;
    if (kType.isDynamicDim(0))
      dynamic.push_back(im.toIndex(im.dimOf(a.keys, 0)));
    cache = mlir::kvc::CacheEmptyOp::create(b, im.loc, cacheType, dynamic);
  }
  ++im.numCacheLayers;
  Value appended = mlir::kvc::AppendOp::create(b, im.loc, cache, a.keys,
                                               a.values);

  Value mask;
  if (a.mask) {
    // batch x (1|q_heads) x q_len x tokens, as kvc.attend takes it.
    Value additive = additiveMask(im, a.mask, element);
    auto maskType = cast<RankedTensorType>(additive.getType());
    if (maskType.getRank() > 4)
      return im.nodeError() << "the mask has rank " << maskType.getRank()
                            << ", at most 4 is supported",
             failure();
    int64_t offset = 4 - maskType.getRank();
    auto dimOrOne = [&](int64_t d) -> OpFoldResult {
      int64_t i = d - offset;
      if (i < 0 || maskType.getDimSize(i) == 1)
        return b.getIndexAttr(1);
      return im.dimOf(additive, i);
    };
    OpFoldResult tokens = maskType.getRank() >= 1
                              ? im.dimOf(additive, maskType.getRank() - 1)
                              : b.getIndexAttr(1);
    FailureOr<Value> full = im.broadcastTo(
        additive, {im.dimOf(a.query, 0), dimOrOne(1), im.dimOf(a.query, 2),
                   tokens});
    if (failed(full))
      return failure();
    mask = *full;
  }
  FloatAttr scale = a.scale ? b.getF32FloatAttr(float(*a.scale)) : FloatAttr();
  FloatAttr softcap =
      a.softcap != 0.0 ? b.getF32FloatAttr(float(a.softcap)) : FloatAttr();
  Value output = mlir::kvc::AttendOp::create(
                     b, im.loc, a.query.getType(), /*mass=*/Type(), a.query,
                     appended, mask, scale, a.causal, IntegerAttr(), softcap)
                     .getResult();
  if (a.mergeHeads) {
    Value bshd = transpose0213(im, output);
    auto t = cast<RankedTensorType>(bshd.getType());
    output = im.reshape(bshd, {im.dimOf(bshd, 0), im.dimOf(bshd, 1),
                               b.getIndexAttr(t.getDimSize(2) *
                                              t.getDimSize(3))});
  }
  im.setOutput(0, output);
  if (im.hasOutput(a.presentKeyOutput)) {
    TensorValue cacheValue;
    cacheValue.tensor = appended;
    im.setOutput(a.presentKeyOutput, std::move(cacheValue));
  }
  if (im.hasOutput(a.presentValueOutput))
    im.droppedOutputs.insert(im.node->output(a.presentValueOutput));
  return success();
}

/// The name of optional input `i`, or "".
std::string inputName(Importer &im, unsigned i) {
  return im.hasInput(i) ? im.node->input(i) : "";
}

LogicalResult importAttention(Importer &im) {
  if (failed(im.checkAttributes({"is_causal", "kv_num_heads", "q_num_heads",
                                 "qk_matmul_output_mode", "scale", "softcap",
                                 "softmax_precision"})))
    return failure();
  FailureOr<int64_t> causal = im.intAttr("is_causal", 0);
  FailureOr<int64_t> qHeads = im.intAttr("q_num_heads", 0);
  FailureOr<int64_t> kvHeads = im.intAttr("kv_num_heads", 0);
  FailureOr<int64_t> qkMode = im.intAttr("qk_matmul_output_mode", 0);
  FailureOr<double> softcap = im.floatAttr("softcap", 0.0);
  if (failed(causal) || failed(qHeads) || failed(kvHeads) || failed(qkMode) ||
      failed(softcap))
    return failure();
  if (im.hasOutput(3) || *qkMode != 0)
    return im.nodeError() << "the qk_matmul_output output is not supported",
           failure();
  if (im.hasInput(6))
    return im.nodeError() << "input 'nonpad_kv_seqlen' is not supported",
           failure();
  FailureOr<Value> q = im.inputTensor(0), k = im.inputTensor(1),
                   v = im.inputTensor(2);
  if (failed(q) || failed(k) || failed(v))
    return failure();
  CachedAttention a;
  a.mergeHeads = cast<RankedTensorType>(q->getType()).getRank() == 3;
  FailureOr<Value> q4 = splitHeads(im, *q, *qHeads, "Q");
  FailureOr<Value> k4 = splitHeads(im, *k, *kvHeads, "K");
  FailureOr<Value> v4 = splitHeads(im, *v, *kvHeads, "V");
  if (failed(q4) || failed(k4) || failed(v4))
    return failure();
  a.query = *q4;
  a.keys = *k4;
  a.values = *v4;
  if (im.hasInput(3)) {
    FailureOr<Value> mask = im.inputTensor(3);
    if (failed(mask))
      return failure();
    a.mask = *mask;
  }
  if (im.hasInput(4) != im.hasInput(5))
    return im.nodeError() << "past_key and past_value come together",
           failure();
  a.pastKey = inputName(im, 4);
  a.pastValue = inputName(im, 5);
  if (im.attribute("scale")) {
    FailureOr<double> scale = im.floatAttr("scale", std::nullopt);
    if (failed(scale))
      return failure();
    a.scale = *scale;
  }
  a.causal = *causal != 0;
  a.softcap = *softcap;
  return emitCachedAttention(im, a);
}

LogicalResult importGroupQueryAttention(Importer &im) {
  if (failed(im.checkAttributes({"num_heads", "kv_num_heads", "scale",
                                 "do_rotary", "local_window_size",
                                 "rotary_interleaved", "softcap",
                                 "smooth_softmax", "qk_output"})))
    return failure();
  FailureOr<int64_t> heads = im.intAttr("num_heads", std::nullopt);
  FailureOr<int64_t> kvHeads = im.intAttr("kv_num_heads", std::nullopt);
  FailureOr<int64_t> rotary = im.intAttr("do_rotary", 0);
  FailureOr<int64_t> window = im.intAttr("local_window_size", -1);
  FailureOr<int64_t> smooth = im.intAttr("smooth_softmax", 0);
  FailureOr<int64_t> qkOutput = im.intAttr("qk_output", 0);
  FailureOr<double> softcap = im.floatAttr("softcap", 0.0);
  if (failed(heads) || failed(kvHeads) || failed(rotary) || failed(window) ||
      failed(smooth) || failed(qkOutput) || failed(softcap))
    return failure();
  if (*rotary)
    return im.nodeError() << "unsupported attribute 'do_rotary' = " << *rotary
                          << " (apply the rotary embedding before the node)",
           failure();
  if (*window != -1)
    return im.nodeError() << "unsupported attribute 'local_window_size' = "
                          << *window,
           failure();
  if (*smooth || *qkOutput)
    return im.nodeError() << "unsupported attribute '"
                          << (*smooth ? "smooth_softmax" : "qk_output") << "'",
           failure();
  if (!im.hasInput(1) || !im.hasInput(2))
    return im.nodeError() << "packed QKV (no separate key/value inputs) is "
                             "not supported",
           failure();
  for (unsigned i = 7; i < unsigned(im.numInputs()); ++i)
    if (im.hasInput(i))
      return im.nodeError() << "input " << i
                            << " (cos/sin cache, position_ids or bias) is "
                               "not supported",
             failure();
  FailureOr<Value> q = im.inputTensor(0), k = im.inputTensor(1),
                   v = im.inputTensor(2);
  if (failed(q) || failed(k) || failed(v))
    return failure();
  CachedAttention a;
  a.mergeHeads = true;
  FailureOr<Value> q4 = splitHeads(im, *q, *heads, "query");
  FailureOr<Value> k4 = splitHeads(im, *k, *kvHeads, "key");
  FailureOr<Value> v4 = splitHeads(im, *v, *kvHeads, "value");
  if (failed(q4) || failed(k4) || failed(v4))
    return failure();
  a.query = *q4;
  a.keys = *k4;
  a.values = *v4;
  if (im.hasInput(3) != im.hasInput(4))
    return im.nodeError() << "past_key and past_value come together",
           failure();
  a.pastKey = inputName(im, 3);
  a.pastValue = inputName(im, 4);
  if (im.attribute("scale")) {
    FailureOr<double> scale = im.floatAttr("scale", std::nullopt);
    if (failed(scale))
      return failure();
    if (*scale != 0.0)
      a.scale = *scale;
  }
  // GroupQueryAttention is causal by definition.
  a.causal = true;
  a.softcap = *softcap;
  return emitCachedAttention(im, a);
}

LogicalResult importMultiHeadAttention(Importer &im) {
  if (failed(im.checkAttributes({"num_heads", "mask_filter_value", "scale",
                                 "unidirectional"})))
    return failure();
  FailureOr<int64_t> heads = im.intAttr("num_heads", std::nullopt);
  FailureOr<int64_t> unidirectional = im.intAttr("unidirectional", 0);
  if (failed(heads) || failed(unidirectional))
    return failure();
  if (!im.hasInput(1) || !im.hasInput(2))
    return im.nodeError() << "packed QKV (no separate key/value inputs) is "
                             "not supported",
           failure();
  if (im.hasInput(3))
    return im.nodeError() << "input 'bias' is not supported (add it before "
                             "the node)",
           failure();
  if (im.hasInput(4))
    return im.nodeError() << "input 'key_padding_mask' is not supported (use "
                             "attention_bias)",
           failure();
  for (unsigned i = 8; i < unsigned(im.numInputs()); ++i)
    if (im.hasInput(i))
      return im.nodeError() << "input " << i << " is not supported",
             failure();
  if (im.hasOutput(3))
    return im.nodeError() << "the qk output is not supported", failure();
  FailureOr<Value> q = im.inputTensor(0), k = im.inputTensor(1),
                   v = im.inputTensor(2);
  if (failed(q) || failed(k) || failed(v))
    return failure();
  CachedAttention a;
  a.mergeHeads = true;
  FailureOr<Value> q4 = splitHeads(im, *q, *heads, "query");
  FailureOr<Value> k4 = splitHeads(im, *k, *heads, "key");
  FailureOr<Value> v4 = splitHeads(im, *v, *heads, "value");
  if (failed(q4) || failed(k4) || failed(v4))
    return failure();
  a.query = *q4;
  a.keys = *k4;
  a.values = *v4;
  if (im.hasInput(5)) {
    FailureOr<Value> bias = im.inputTensor(5);
    if (failed(bias))
      return failure();
    a.mask = *bias;
  }
  if (im.hasInput(6) != im.hasInput(7))
    return im.nodeError() << "past_key and past_value come together",
           failure();
  a.pastKey = inputName(im, 6);
  a.pastValue = inputName(im, 7);
  if (im.attribute("scale")) {
    FailureOr<double> scale = im.floatAttr("scale", std::nullopt);
    if (failed(scale))
      return failure();
    if (*scale != 0.0)
      a.scale = *scale;
  }
  a.causal = *unidirectional != 0;
  return emitCachedAttention(im, a);
}

} // namespace

void addAttentionOps(OpTable &table) {
  table["Attention"] = importAttention;
  table["com.microsoft::GroupQueryAttention"] = importGroupQueryAttention;
  table["com.microsoft::MultiHeadAttention"] = importMultiHeadAttention;
}

} // namespace onnx_import
} // namespace kvc
