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
    // checkLowerable rejected dynamic shapes with a message.
    if (!inputType.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "not a static quantize");

    QuantizeBuffers buffers(rewriter, op);

    // An item per element of the scales: (token, channel group) for token
    // axis, (token group, channel) for channel axis, a token for fp8.
    ArrayRef<int64_t> items = op.getScales().getType().getShape();
    SmallVector<Value> ivs;
    forEachIndex(rewriter, loc, items, ivs, [&](ArrayRef<Value> at) {
      emitQuantizeItem(rewriter, loc, side, buffers.input, buffers.codes,
                       buffers.scales, buffers.zeros, at);
    });

    buffers.replace(rewriter, op);
    return success();
  }
};

} // namespace

QuantizeBuffers::QuantizeBuffers(OpBuilder &b, QuantizeOp op) {
  Location loc = op.getLoc();
  auto memrefOf = [](Value tensor) {
    auto type = cast<RankedTensorType>(tensor.getType());
    return MemRefType::get(type.getShape(), type.getElementType());
  };
  input = bufferization::ToBufferOp::create(b, loc, memrefOf(op.getInput()),
                                            op.getInput(), /*read_only=*/true);
  codes = memref::AllocOp::create(b, loc, memrefOf(op.getCodes()));
  scales = memref::AllocOp::create(b, loc, memrefOf(op.getScales()));
  if (op.getZeros()) // fp8 has no zero points
    zeros = memref::AllocOp::create(b, loc, memrefOf(op.getZeros()));
}

void QuantizeBuffers::replace(ConversionPatternRewriter &rewriter,
                              QuantizeOp op) const {
  SmallVector<Value> results, buffers = {codes, scales};
  if (zeros)
    buffers.push_back(zeros);
  for (auto [result, buffer] : llvm::zip(op.getResults(), buffers))
    results.push_back(bufferization::ToTensorOp::create(
        rewriter, op.getLoc(), result.getType(), buffer, /*restrict=*/true,
        /*writable=*/true));
  rewriter.replaceOp(op, results);
}

void mlir::kvc::populateQuantizeToLoopsPattern(RewritePatternSet &patterns,
                                               const TypeConverter &converter) {
  patterns.add<QuantizeToLoops>(converter, patterns.getContext());
}
