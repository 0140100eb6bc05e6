//===- AppendToLoops.cpp - kvc.append written by generated loops ----------===//
//
// kvc-lower-to-loops' append=generated: the runtime only reserves the
// tokens (kvc_rt_mlir_reserve_append: checks, pages, counts) and loops
// emitted by AppendWriter quantize, pack and stage them, the same emitter
// the GPU append kernel runs. The default, append=runtime, calls
// kvc_rt_mlir_append instead (KVCToLoops.cpp).
//
//===----------------------------------------------------------------------===//

#include "AppendWriter.h"
#include "Lowering.h"
#include "RuntimeABI.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

SmallVector<HeadRunRange> mlir::kvc::getHeadRuns(const CachePageLayout &pages) {
  SmallVector<HeadRunRange> runs;
  for (unsigned first = 0; first < pages.heads.size();) {
    unsigned last = first + 1;
    while (last < pages.heads.size() &&
           pages.heads[last].encoding == pages.heads[first].encoding)
      ++last;
    runs.push_back({first, last});
    first = last;
  }
  return runs;
}

void mlir::kvc::emitReservedAppend(
    OpBuilder &b, AppendOp op, const LoweringContext &ctx,
    StringRef checkLayoutFn, Value binding,
    function_ref<void(const ReservedAppend &)> body) {
  Location loc = op.getLoc();
  Type ptr = LLVM::LLVMPointerType::get(b.getContext());
  CacheType cacheType = op.getCache().getType();
  const int64_t kvHeads = cacheType.getNumKVHeads(),
                headDim = cacheType.getHeadDim();
  const SmallVector<num::CacheEncoding> &headEncodings =
      ctx.headEncodings.at(op);
  CachePageLayout pages(headEncodings, headDim, ctx.pageTokens);
  const unsigned residual = headEncodings.front().residual;
  auto toBuffer = [&](Value tensor) -> Value {
    auto type = cast<RankedTensorType>(tensor.getType());
    return bufferization::ToBufferOp::create(
        b, loc, MemRefType::get(type.getShape(), type.getElementType()), tensor,
        /*read_only=*/true);
  };
  Value keys = toBuffer(op.getKeys()), values = toBuffer(op.getValues());
  Value numTokens = memref::DimOp::create(b, loc, keys, 2);
  Value layoutOk = emitLayoutCheck(b, loc, ctx, checkLayoutFn, binding, pages,
                                   residual, kvHeads, headDim);
  // Nothing is reserved unless the layout is the compiled one: reserved
  // tokens must be written.
  scf::IfOp::create(b, loc, layoutOk, [&](OpBuilder &nb, Location) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
    Value records = ctx.call(b, loc, abi::kReserveAppend, ptr,
                             {binding, arith::IndexCastOp::create(
                                           b, loc, b.getI64Type(), numTokens)});
    Value reserved =
        LLVM::ICmpOp::create(b, loc, LLVM::ICmpPredicate::ne, records,
                             LLVM::ZeroOp::create(b, loc, ptr));
    scf::IfOp::create(b, loc, reserved, [&](OpBuilder &rb, Location) {
      OpBuilder::InsertionGuard inner(b);
      b.setInsertionPoint(rb.getInsertionBlock(), rb.getInsertionPoint());
      auto pool = [&](int32_t side) {
        return ctx.call(
            b, loc, abi::kPool, ptr,
            {binding, arith::ConstantIntOp::create(b, loc, side, 32)});
      };
      Value kPool = pool(0);
      Value vPool = pool(1);
      body(ReservedAppend{pages, num::residualStagingBytes(residual, headDim),
                          headDim, keys, values, records, kPool, vPool});
      scf::YieldOp::create(b, loc);
    });
    scf::YieldOp::create(b, loc);
  });
}

namespace {

/// for iv in [lb, ub), `body` emitted with `b` inside the loop.
void forRange(OpBuilder &b, Location loc, Value lb, Value ub,
              function_ref<void(Value)> body) {
  scf::ForOp::create(
      b, loc, lb, ub, arith::ConstantIndexOp::create(b, loc, 1), ValueRange{},
      [&](OpBuilder &nb, Location, Value iv, ValueRange) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        body(iv);
        scf::YieldOp::create(b, loc);
      });
}

struct AppendToLoops : public OpConversionPattern<AppendOp> {
  AppendToLoops(const TypeConverter &converter, MLIRContext *context,
                const LoweringContext &lowering)
      : OpConversionPattern(converter, context), lowering(lowering) {}

  LogicalResult
  matchAndRewrite(AppendOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value binding = adaptor.getCache();
    emitReservedAppend(
        rewriter, op, lowering, abi::kCheckLayout, binding,
        [&](const ReservedAppend &r) {
          OpBuilder &b = rewriter;
          Value zero = arith::ConstantIndexOp::create(b, loc, 0);
          Value batch = memref::DimOp::create(b, loc, r.keys, 0);
          Value inputs[2] = {r.keys, r.values};
          forRange(b, loc, zero, batch, [&](Value entry) {
            for (HeadRunRange run : getHeadRuns(r.pages)) {
              for (bool value : {false, true}) {
                AppendTarget target = loadAppendTarget(
                    b, loc, ByteViews{r.records}, entry, value,
                    ByteViews{value ? r.vPool : r.kPool}, /*addressSpace=*/0);
                AppendWriter writer(b, loc, value, r.pages, run.first,
                                    r.headDim, lowering.pageTokens,
                                    r.residualHeadBytes);
                auto input = [&](Value head, Value token, Value channel) {
                  return loadAsF32(b, loc, inputs[value],
                                   {entry, head, token, channel});
                };
                forRange(
                    b, loc, arith::ConstantIndexOp::create(b, loc, run.first),
                    arith::ConstantIndexOp::create(b, loc, run.last),
                    [&](Value head) {
                      // The flush reads staged rows the staging overwrites.
                      forRange(b, loc, zero, writer.flushItems(b, loc, target),
                               [&](Value item) {
                                 writer.emitFlushItem(b, loc, target, head,
                                                      item, input);
                               });
                      forRange(b, loc, zero, writer.stageItems(b, loc, target),
                               [&](Value item) {
                                 writer.emitStageItem(b, loc, target, head,
                                                      item, input);
                               });
                    });
              }
            }
          });
        });
    rewriter.replaceOp(op, binding);
    return success();
  }

private:
  const LoweringContext &lowering;
};

} // namespace

void mlir::kvc::populateAppendToLoopsPattern(RewritePatternSet &patterns,
                                             const TypeConverter &converter,
                                             const LoweringContext &context) {
  patterns.add<AppendToLoops>(converter, patterns.getContext(), context);
}
