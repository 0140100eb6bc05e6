//===- CombineKernel.cpp - the merge of decode attention's splits ---------===//
//
// The split kernel leaves, per (sequence, query head, split), an
// unnormalized output with its maximum score and its sum of exp(score -
// maximum) in the workspace (AttendKernels.h: workspaceBytes). The merge
// scales each split by exp(its maximum - the largest) and divides by the
// scaled sums: in a kernel of its own, or in the split kernel's last block
// of each (sequence, KV head).
//
//===----------------------------------------------------------------------===//

#include "CombineKernel.h"

#include "../KVCToLoops/PageReader.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;
using namespace mlir::kvc;

SmallVector<Type> mlir::kvc::combineBufferTypes(MLIRContext *ctx,
                                                unsigned threads,
                                                int64_t headDim) {
  const int64_t warps = threads / 32;
  auto shared = [&](ArrayRef<int64_t> shape) -> Type {
    return MemRefType::get(shape, Float32Type::get(ctx),
                           MemRefLayoutAttrInterface(), workgroupSpace(ctx));
  };
  return {shared({warps, headDim}), shared({warps}), shared({warps})};
}

namespace {
/// The block's stores of one output row: each thread stores channels tid,
/// tid + threads, ... of row `row` (batch * query heads + query head) of
/// the output, viewed as [B * Hq][D].
struct OutputRow {
  KernelBuilder &k;
  const CombineSite &site;
  Value row, tid;
  void store(function_ref<Value(Value)> channelValue) const {
    OpBuilder &b = k.b;
    Location loc = k.loc;
    Value rows = memref::CollapseShapeOp::create(
        b, loc, site.out, ArrayRef<ReassociationIndices>{{0, 1, 2}, {3}});
    k.loop(tid, k.index(site.headDim), k.index(site.threads), {},
           [&](Value channel, ValueRange) -> SmallVector<Value> {
             Value result = channelValue(channel);
             if (site.outElementType != result.getType())
               result =
                   arith::TruncFOp::create(b, loc, site.outElementType, result);
             memref::StoreOp::create(b, loc, result, rows,
                                     ValueRange{row, channel});
             return {};
           });
  }
};
} // namespace

/// A row of NaN: what a layout mismatch leaves rather than a plausible
/// output.
static void storeNaN(KernelBuilder &k, const CombineSite &site, Value row) {
  auto f32 = cast<FloatType>(k.b.getF32Type());
  Value nan = arith::ConstantFloatOp::create(
      k.b, k.loc, f32, APFloat::getNaN(f32.getFloatSemantics()));
  OutputRow{k, site, row, k.threadId()}.store([&](Value) { return nan; });
}

/// The merge of emitCombine, for a valid layout, by thread `tid` of the
/// block.
static void mergeSplits(KernelBuilder &k, const CombineSite &site, Value row,
                        Value splits, Value tid) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  Type f32 = b.getF32Type();
  const int64_t headDim = site.headDim, threads = site.threads,
                warps = threads / 32;
  // Lane l of each warp owns channels [l * perLane, (l + 1) * perLane) of
  // its splits' partial outputs: head_dim is a multiple of 32.
  const int64_t perLane = headDim / 32;
  Value warp = k.div(tid, 32), lane = k.rem(tid, 32);
  ByteViews ws{site.workspace};
  Value statsBase =
      k.mul(k.mul(splits, site.batch * site.queryHeads), headDim * 4);
  auto stat = [&](Value split, int64_t which) {
    Value slot = k.add(k.mul(row, splits), split);
    return ws.load(b, loc, f32,
                   k.add(statsBase, k.add(k.mul(slot, 8), k.index(which * 4))));
  };
  // The splits are independent loads: the block's threads share them
  // out (the maximum), then its warps (the sums), instead of each
  // thread walking every split in a chain of dependent loads.
  double negInf = -std::numeric_limits<double>::infinity();
  Value localMaximum =
      k.loop(tid, splits, k.index(threads), {k.f32(negInf)},
             [&](Value s, ValueRange acc) -> SmallVector<Value> {
               return {k.fmax(acc[0], stat(s, 0))};
             })
          .getResult(0);
  Value maximum = k.blockReduce(localMaximum, site.scratch, threads,
                                [&](Value x, Value y) { return k.fmax(x, y); });
  SmallVector<Value> inits(perLane + 1, k.f32(0.0));
  Value firstChannel = k.mul(lane, perLane);
  // The largest power-of-two alignment of a lane's channels, up to a
  // 16-byte load.
  const unsigned alignment =
      std::min<unsigned>(16, unsigned(perLane * 4) & -unsigned(perLane * 4));
  scf::ForOp sums = k.loop(
      warp, splits, k.index(warps), inits,
      [&](Value s, ValueRange acc) -> SmallVector<Value> {
        // Empty splits have maximum -inf and sum 0: weight 0.
        Value weight = math::ExpOp::create(
            b, loc, arith::SubFOp::create(b, loc, stat(s, 0), maximum));
        Value slot = k.add(k.mul(row, splits), s);
        Value partial = ws.loadVector(
            b, loc, f32, perLane,
            k.mul(k.add(k.mul(slot, headDim), firstChannel), 4), alignment);
        SmallVector<Value> next;
        next.push_back(k.fadd(acc[0], k.fmul(weight, stat(s, 1))));
        for (int64_t j = 0; j < perLane; ++j)
          next.push_back(k.fadd(
              acc[1 + j], k.fmul(weight, vector::ExtractOp::create(
                                             b, loc, partial, int64_t(j)))));
        return next;
      });
  for (int64_t j = 0; j < perLane; ++j)
    memref::StoreOp::create(b, loc, sums.getResult(1 + j), site.warpOutputs,
                            ValueRange{warp, k.add(firstChannel, k.index(j))});
  k.ifThen(k.cmp(arith::CmpIPredicate::eq, lane, k.index(0)), [&] {
    memref::StoreOp::create(b, loc, sums.getResult(0), site.warpSums, warp);
  });
  // Every thread passes this barrier after its reads of the previous
  // merge's buffers, and writes them again only after it: merges may
  // follow one another without one more.
  k.barrier();
  // The warps' sums in warp order: every call rounds alike.
  Value total = memref::LoadOp::create(b, loc, site.warpSums, k.index(0));
  for (int64_t w = 1; w < warps; ++w)
    total = k.fadd(total,
                   memref::LoadOp::create(b, loc, site.warpSums, k.index(w)));
  OutputRow{k, site, row, tid}.store([&](Value channel) {
    Value weighted = memref::LoadOp::create(b, loc, site.warpOutputs,
                                            ValueRange{k.index(0), channel});
    for (int64_t w = 1; w < warps; ++w)
      weighted = k.fadd(
          weighted, memref::LoadOp::create(b, loc, site.warpOutputs,
                                           ValueRange{k.index(w), channel}));
    return arith::DivFOp::create(b, loc, weighted, total);
  });
}

void mlir::kvc::emitCombine(KernelBuilder &k, const CombineSite &site,
                            Value row, Value splits, Value ok) {
  // A layout mismatch poisons the output rather than leave it plausible;
  // the split kernels wrote nothing then. `ok` is the same for the whole
  // block, so the merge's barriers are reached by every thread or none.
  k.ifThenElse(
      k.cmp(arith::CmpIPredicate::ne, ok, k.i32(0)),
      [&] { mergeSplits(k, site, row, splits, k.threadId()); },
      [&] { storeNaN(k, site, row); });
}

gpu::GPUFuncOp mlir::kvc::buildCombineKernel(
    OpBuilder &b, Location loc, gpu::GPUModuleOp module, StringRef name,
    int64_t batch, int64_t queryHeads, int64_t headDim, Type outElementType) {
  MLIRContext *ctx = b.getContext();
  Type ptr = LLVM::LLVMPointerType::get(ctx);
  auto outType =
      MemRefType::get({batch, queryHeads, 1, headDim}, outElementType);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToEnd(module.getBody());
  auto type =
      b.getFunctionType({ptr, outType, b.getIndexType(), b.getI32Type()}, {});
  auto func = gpu::GPUFuncOp::create(
      b, loc, name, type, combineBufferTypes(ctx, kCombineThreads, headDim),
      TypeRange{});
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(
      b.getDenseI32ArrayAttr({int32_t(kCombineThreads), 1, 1}));
  b.setInsertionPointToStart(&func.getBody().front());
  KernelBuilder k{b, loc};
  ArrayRef<BlockArgument> buffers = func.getWorkgroupAttributions();
  CombineSite site{batch,
                   queryHeads,
                   headDim,
                   unsigned(kCombineThreads),
                   outElementType,
                   k.global(func.getArgument(0)),
                   func.getArgument(1),
                   buffers[0],
                   buffers[1],
                   buffers[2]};
  emitCombine(k, site,
              k.add(k.mul(k.blockId(gpu::Dimension::y), queryHeads),
                    k.blockId(gpu::Dimension::x)),
              /*splits=*/func.getArgument(2), /*ok=*/func.getArgument(3));
  gpu::ReturnOp::create(b, loc);
  return func;
}

void mlir::kvc::recordFusedCombineState(KernelBuilder &k, Value state,
                                        Value firstRow, Value splits) {
  for (auto [at, value] : {std::pair<int64_t, Value>{1, firstRow}, {2, splits}})
    memref::StoreOp::create(
        k.b, k.loc,
        arith::IndexCastOp::create(k.b, k.loc, k.b.getI32Type(), value), state,
        k.index(at));
}

void mlir::kvc::emitFusedCombine(KernelBuilder &k, const CombineSite &site,
                                 Value counters, int64_t group, Value state) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  Type i32 = b.getI32Type();
  auto recorded = [&](int64_t at) -> Value {
    return k.toIndex(memref::LoadOp::create(b, loc, state, k.index(at)));
  };
  auto firstRow = [&] { return recorded(1); };
  // The block's partials are written (the barrier orders every thread's
  // stores before thread 0's release: the pattern of CUTLASS's semaphore).
  k.barrier();
  k.ifThen(k.cmp(arith::CmpIPredicate::eq, k.threadId(), k.index(0)), [&] {
    // Row (batch, first query head of the KV head) / group = batch * KV
    // heads + KV head.
    Value slot = arith::IndexCastOp::create(b, loc, b.getI64Type(),
                                            k.div(firstRow(), group));
    Value global = k.global(counters);
    Value counter = LLVM::GEPOp::create(b, loc, global.getType(), i32, global,
                                        ValueRange{slot});
    LLVM::FenceOp::create(b, loc, LLVM::AtomicOrdering::release, "device");
    Value before = LLVM::AtomicRMWOp::create(
        b, loc, LLVM::AtomicBinOp::add, counter, k.i32(1),
        LLVM::AtomicOrdering::monotonic, "device");
    LLVM::FenceOp::create(b, loc, LLVM::AtomicOrdering::acquire, "device");
    Value lastSplit =
        arith::IndexCastOp::create(b, loc, i32, k.sub(recorded(2), k.index(1)));
    Value isLast = k.cmp(arith::CmpIPredicate::eq, before, lastSplit);
    // The last block sets it back: the next launch, behind this one on the
    // stream, starts from zero.
    k.ifThen(isLast,
             [&] { LLVM::StoreOp::create(b, loc, k.i32(0), counter, 4); });
    memref::StoreOp::create(b, loc, arith::ExtUIOp::create(b, loc, i32, isLast),
                            state, k.index(0));
  });
  k.barrier();
  Value merges =
      k.cmp(arith::CmpIPredicate::ne,
            memref::LoadOp::create(b, loc, state, k.index(0)), k.i32(0));
  k.ifThen(merges, [&] {
    Value first = firstRow();
    // The split count read back too (what the block computed from the
    // original, LLVM would reuse: kept in registers).
    Value splits = recorded(2);
    // So is the thread id: with the kernel's own, LLVM reused the warp,
    // lane and channel offsets the passes computed from it, and kept them
    // in registers across the value pass (ptxas spilled the tensor-core
    // kernels at GQA 7 and 8, head_dim 128).
    Value tid = k.freshThreadId();
    // A loop, not unrolled: the merge runs once a launch and KV head, and
    // group copies of it made the largest kernels spill.
    k.loop(first, k.add(first, k.index(group)), k.index(1), {},
           [&](Value row, ValueRange) -> SmallVector<Value> {
             mergeSplits(k, site, row, splits, tid);
             return {};
           });
  });
}

void mlir::kvc::emitFusedCombineFailure(KernelBuilder &k,
                                        const CombineSite &site, int64_t group,
                                        Value firstRow, Value splitIndex) {
  k.ifThen(k.cmp(arith::CmpIPredicate::eq, splitIndex, k.index(0)), [&] {
    for (int64_t j = 0; j < group; ++j)
      storeNaN(k, site, k.add(firstRow, k.index(j)));
  });
}
