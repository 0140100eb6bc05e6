//===- TensorCoreSupport.cpp - Shared pieces of the mma.sync passes -------===//

#include "TensorCoreSupport.h"

#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::kvc;

namespace mlir {
namespace kvc {
namespace tensorcore {

/// Two f32 values as an fp16 pair (cvt.rn.f16x2.f32).
Value packHalfPair(KernelBuilder &k, Value x, Value y) {
  Type f32 = k.b.getF32Type();
  Value pair = vector::FromElementsOp::create(
      k.b, k.loc, VectorType::get({2}, f32), ValueRange{x, y});
  return arith::TruncFOp::create(k.b, k.loc,
                                 VectorType::get({2}, k.b.getF16Type()), pair);
}

/// A constant vector of `type` filled with zeros.
Value splat(KernelBuilder &k, VectorType type, double value) {
  return arith::ConstantOp::create(
      k.b, k.loc, type,
      DenseElementsAttr::get(
          type, k.b.getFloatAttr(type.getElementType(), value)));
}

Value zeros(KernelBuilder &k, VectorType type) {
  return arith::ConstantOp::create(
      k.b, k.loc, type,
      DenseElementsAttr::get(type, k.b.getZeroAttr(type.getElementType())));
}

/// fp16 pairs as an mma fragment (vector<pairs x 2 x f16>).
Value fragment(KernelBuilder &k, ArrayRef<Value> pairs) {
  auto type = VectorType::get({int64_t(pairs.size()), 2}, k.b.getF16Type());
  Value result = zeros(k, type);
  for (auto [i, pair] : llvm::enumerate(pairs))
    result = vector::InsertOp::create(k.b, k.loc, pair, result, int64_t(i));
  return result;
}

/// One fp16 pair as a one-register mma fragment (vector<1x2xf16>), built
/// from its two halves: inserted whole, canonicalization turns it into a
/// vector.broadcast that the NVVM lowering leaves unconverted.
Value singleFragment(KernelBuilder &k, Value pair) {
  Type f16 = k.b.getF16Type();
  SmallVector<Value> halves;
  for (int64_t i = 0; i < 2; ++i)
    halves.push_back(
        LLVM::ExtractElementOp::create(k.b, k.loc, pair, k.i32(int32_t(i))));
  return vector::FromElementsOp::create(k.b, k.loc,
                                        VectorType::get({1, 2}, f16), halves);
}

/// `body` applied to `accs` behind a branch on `condition`, which the
/// caller knows to hold (the else branch passes `accs` on): ptxas hoists no
/// global load above a branch, so the loads of `body` do not hold
/// registers during the products before it.
SmallVector<Value>
eitherBranch(KernelBuilder &k, Value condition, ValueRange accs,
             function_ref<SmallVector<Value>(ValueRange)> thenBody,
             function_ref<SmallVector<Value>(ValueRange)> elseBody) {
  auto ifOp = scf::IfOp::create(k.b, k.loc, accs.getTypes(), condition, true);
  OpBuilder::InsertionGuard guard(k.b);
  k.b.setInsertionPointToStart(ifOp.elseBlock());
  scf::YieldOp::create(k.b, k.loc, elseBody(accs));
  k.b.setInsertionPointToStart(ifOp.thenBlock());
  scf::YieldOp::create(k.b, k.loc, thenBody(accs));
  return SmallVector<Value>(ifOp.getResults());
}

SmallVector<Value>
behindBranch(KernelBuilder &k, Value condition, ValueRange accs,
             function_ref<SmallVector<Value>(ValueRange)> body) {
  return eitherBranch(k, condition, accs, body, [](ValueRange in) {
    return SmallVector<Value>(in);
  });
}

/// How many blocks of `size` tokens from `base` (at most `start`) cover
/// the `count` tokens of the split [start, end): none when it is empty.
Value coveringBlocks(KernelBuilder &k, Value count, Value end,
                            Value base, int64_t size) {
  return arith::SelectOp::create(
      k.b, k.loc, k.cmp(arith::CmpIPredicate::eq, count, k.index(0)),
      k.index(0),
      arith::CeilDivUIOp::create(k.b, k.loc, k.sub(end, base), k.index(size)));
}

/// The `edge`-th block outside the interior range [inner, innerEnd):
/// those before it, then those from innerEnd on.
Value edgeBlock(KernelBuilder &k, Value edge, Value inner,
                       Value innerEnd) {
  return arith::SelectOp::create(k.b, k.loc,
                                 k.cmp(arith::CmpIPredicate::ult, edge, inner),
                                 edge, k.add(k.sub(edge, inner), innerEnd));
}

/// Of the `blocks` blocks of `size` tokens from `base` (a multiple of
/// `size`, at most `start`) that cover the split [start, end), the range
/// [inner, innerEnd) of those wholly in it and below `compressed` (in
/// pages); the others are at most the first, the last and the residual
/// buffer's.
std::pair<Value, Value> interiorRange(KernelBuilder &k, Value start,
                                             Value end, Value compressed,
                                             Value base, Value blocks,
                                             int64_t size) {
  Value inner =
      k.minU(arith::SelectOp::create(
                 k.b, k.loc, k.cmp(arith::CmpIPredicate::ne, start, base),
                 k.index(1), k.index(0)),
             blocks);
  Value pagedEnd = k.minU(end, compressed);
  Value whole = arith::SelectOp::create(
      k.b, k.loc, k.cmp(arith::CmpIPredicate::ugt, pagedEnd, base),
      k.div(k.sub(pagedEnd, base), size), k.index(0));
  return {inner, k.minU(k.maxU(inner, whole), blocks)};
}

SmallVector<Value> readInSplit(KernelBuilder &k, Value local, Value count,
                               int64_t pairs,
                               function_ref<SmallVector<Value>()> read) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  SmallVector<Value> none(pairs,
                          zeros(k, VectorType::get({2}, b.getF16Type())));
  auto ifOp =
      scf::IfOp::create(b, loc, TypeRange(ValueRange(none)),
                        k.cmp(arith::CmpIPredicate::ult, local, count), true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  scf::YieldOp::create(b, loc, read());
  b.setInsertionPointToStart(ifOp.elseBlock());
  scf::YieldOp::create(b, loc, none);
  return SmallVector<Value>(ifOp.getResults());
}

/// Channels `span` of local token `local` of the split ([start, start +
/// count)) as fp16 pairs, zeros past `count` (so that tiles past the
/// split's end add nothing). With `direct`, the reader's own fp16-pair
/// dequantization (SequenceSideView::halfPairs, pairs in its
/// halfPairOrder); otherwise the reader's f32 values rounded in pairs
/// (channels 2i, 2i + 1 in pair i; the reader must unroll the span).
SmallVector<Value> readHalfPairs(KernelBuilder &k, const SequenceSideView &view,
                                 Value kvHead, Value start, Value local,
                                 Value count, ChannelSpan span, bool direct) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  return readInSplit(k, local, count, span.count / 2, [&] {
    Value token = k.add(start, local);
    if (direct)
      return view.halfPairs(b, loc, kvHead, token, span);
    SmallVector<Value> none(span.count / 2,
                            zeros(k, VectorType::get({2}, b.getF16Type())));
    return view.foldChannels(
        b, loc, kvHead, token, span, none,
        [&](Value, std::optional<int64_t> offset, ArrayRef<Value> values,
            ValueRange pairs) -> SmallVector<Value> {
          // The span is unrolled (setMaxUnrolledSpan): offsets are static,
          // and chunks hold an even number of channels.
          SmallVector<Value> next(pairs);
          for (size_t i = 0; i + 1 < values.size(); i += 2)
            next[(*offset + int64_t(i)) / 2] =
                packHalfPair(k, values[i], values[i + 1]);
          return next;
        });
  });
}

} // namespace tensorcore
} // namespace kvc
} // namespace mlir
