//===- QuantizeToLoops.cpp - kvc.quantize to loops
//--------------------------===//
//
// kvc.quantize with a `quant` encoding becomes loops over its groups, each
// quantized and packed by GroupQuantizer (the numerics library's quantizer,
// emitted in arith/scf), into buffers that become the result tensors.
//
//===----------------------------------------------------------------------===//

#include "GroupQuantizer.h"
#include "Lowering.h"
#include "PageReader.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

namespace {

/// Nested scf.for loops over `shape`; `body` gets the induction variables
/// with `b` placed in the innermost loop.
void forEachIndex(OpBuilder &b, Location loc, ArrayRef<int64_t> shape,
                  SmallVector<Value> &ivs,
                  function_ref<void(ArrayRef<Value>)> body) {
  if (ivs.size() == shape.size())
    return body(ivs);
  scf::ForOp::create(b, loc, arith::ConstantIndexOp::create(b, loc, 0),
                     arith::ConstantIndexOp::create(b, loc, shape[ivs.size()]),
                     arith::ConstantIndexOp::create(b, loc, 1), ValueRange{},
                     [&](OpBuilder &nb, Location, Value iv, ValueRange) {
                       OpBuilder::InsertionGuard guard(b);
                       b.setInsertionPoint(nb.getInsertionBlock(),
                                           nb.getInsertionPoint());
                       ivs.push_back(iv);
                       forEachIndex(b, loc, shape, ivs, body);
                       ivs.pop_back();
                       scf::YieldOp::create(b, loc);
                     });
}

struct QuantizeToLoops : public OpConversionPattern<QuantizeOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(QuantizeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto inputType = cast<RankedTensorType>(op.getInput().getType());
    num::SideEncoding side = op.getEncoding().toNumerics();
    // checkLowerable rejected fp8 and dynamic shapes with a message.
    if (!side.isQuant() || !inputType.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "not a static quant quantize");
    const num::QuantSpec &spec = side.quant;
    const int64_t rank = inputType.getRank();
    const int64_t tokens = inputType.getDimSize(rank - 2);
    const int64_t channels = inputType.getDimSize(rank - 1);
    const int64_t g = spec.group;
    ArrayRef<int64_t> leading = inputType.getShape().drop_back(2);

    Value input = bufferization::ToBufferOp::create(
        rewriter, loc,
        MemRefType::get(inputType.getShape(), inputType.getElementType()),
        op.getInput(), /*read_only=*/true);
    auto alloc = [&](Value result) -> Value {
      auto type = cast<RankedTensorType>(result.getType());
      return memref::AllocOp::create(
          rewriter, loc,
          MemRefType::get(type.getShape(), type.getElementType()));
    };
    Value codes = alloc(op.getCodes()), scales = alloc(op.getScales()),
          zeros = alloc(op.getZeros());

    // Groups: (token, channel group) for token axis, (token group, channel)
    // for channel axis; the params tensors are indexed the same way.
    SmallVector<int64_t> groups(leading);
    bool tokenAxis = spec.axis == num::QuantAxis::Token;
    groups.push_back(tokenAxis ? tokens : tokens / g);
    groups.push_back(tokenAxis ? channels / g : channels);
    GroupQuantizer quantizer(spec.bits, spec.group);
    SmallVector<Value> ivs;
    forEachIndex(rewriter, loc, groups, ivs, [&](ArrayRef<Value> at) {
      OpBuilder &b = rewriter;
      Value row = at[rank - 2], column = at[rank - 1];
      auto indexConst = [&](int64_t v) -> Value {
        return arith::ConstantIndexOp::create(b, loc, v);
      };
      auto add = [&](Value x, Value y) -> Value {
        return arith::AddIOp::create(b, loc, x, y);
      };
      auto mul = [&](Value x, int64_t y) -> Value {
        return arith::MulIOp::create(b, loc, x, indexConst(y));
      };
      SmallVector<Value> element(at.drop_back(2));
      // The group's codes: [..., t, c / G * (G*b/8) + byte] (token axis) or
      // [..., tb, c, byte] (channel axis).
      SmallVector<Value> codeAt(at.drop_back(2));
      Value firstByte;
      if (tokenAxis) {
        codeAt.push_back(row);
        firstByte = mul(column, g * spec.bits / 8);
      } else {
        codeAt.append({row, column});
        firstByte = indexConst(0);
      }
      auto [scale, zero] = quantizer.emit(
          b, loc,
          [&](Value i) -> Value {
            SmallVector<Value> indices(element);
            if (tokenAxis)
              indices.append({row, add(mul(column, g), i)});
            else
              indices.append({add(mul(row, g), i), column});
            return loadAsF32(b, loc, input, indices);
          },
          [&](Value wordIndex, Value word) {
            // Little-endian: byte j of the word is bits 8j..8j+7.
            Value at0 = add(firstByte, mul(wordIndex, 4));
            for (int64_t j = 0; j < 4; ++j) {
              Value byte = arith::TruncIOp::create(
                  b, loc, b.getI8Type(),
                  j ? arith::ShRUIOp::create(
                          b, loc, word,
                          arith::ConstantIntOp::create(b, loc, 8 * j, 32))
                    : word);
              SmallVector<Value> indices(codeAt);
              indices.push_back(add(at0, indexConst(j)));
              memref::StoreOp::create(b, loc, byte, codes, indices);
            }
          });
      memref::StoreOp::create(b, loc, scale, scales, at);
      memref::StoreOp::create(b, loc, zero, zeros, at);
    });

    SmallVector<Value> results, buffers = {codes, scales, zeros};
    for (auto [result, buffer] : llvm::zip(op.getResults(), buffers))
      results.push_back(bufferization::ToTensorOp::create(
          rewriter, loc, result.getType(), buffer, /*restrict=*/true,
          /*writable=*/true));
    rewriter.replaceOp(op, results);
    return success();
  }
};

} // namespace

void mlir::kvc::populateQuantizeToLoopsPattern(RewritePatternSet &patterns,
                                               const TypeConverter &converter) {
  patterns.add<QuantizeToLoops>(converter, patterns.getContext());
}
