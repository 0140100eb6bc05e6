//===- Staging.cpp - a warp's next units copied ahead into shared memory --===//

#include "Staging.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <tuple>

using namespace mlir;
using namespace mlir::kvc;

int64_t mlir::kvc::keyUnitBytes(int64_t headDim, unsigned bits) {
  return PageReader::tokenPairUnitBytes(headDim, bits);
}

int64_t mlir::kvc::valueUnitBytes(int64_t headDim, unsigned bits,
                                  unsigned group) {
  return PageReader::tokenRowsBytes(kValueUnitTokens, headDim, bits, group);
}

StageBufferBytes mlir::kvc::stageBufferBytes(
    MLIRContext *ctx, unsigned blockThreads, int64_t queryHeadsPerKVHead,
    int64_t headDim, unsigned keyStages, unsigned valueStages, bool valueSums,
    const ::kvc::numerics::CacheEncoding &encoding) {
  const int64_t warps = blockThreads / 32;
  StageBufferBytes bytes;
  if (keyStages)
    bytes.keys =
        warps * keyStages * keyUnitBytes(headDim, encoding.key.quant.bits);
  if (valueStages)
    bytes.values = warps * valueStages *
                   valueUnitBytes(headDim, encoding.value.quant.bits,
                                  encoding.value.quant.group);
  if (valueSums && (keyStages || valueStages))
    bytes.valueSums = sharedBufferBytes(
        valueSumsType(ctx, blockThreads, queryHeadsPerKVHead, headDim));
  return bytes;
}

StageBufferBytes mlir::kvc::stageBufferBytes(const SplitKernelSpec &spec) {
  return stageBufferBytes(
      spec.queryElementType.getContext(), spec.blockThreads,
      spec.queryHeads / spec.kvHeads, spec.headDim, spec.keyStages,
      spec.valueStages, spec.valueProduct == ValueProduct::MMA, spec.encoding);
}

ByteViews mlir::kvc::sharedBytes(KernelBuilder &k, Value workgroupMemref) {
  Value at = memref::ExtractAlignedPointerAsIndexOp::create(k.b, k.loc,
                                                            workgroupMemref);
  Value address = arith::IndexCastOp::create(k.b, k.loc, k.b.getI64Type(), at);
  return ByteViews{LLVM::IntToPtrOp::create(
      k.b, k.loc, LLVM::LLVMPointerType::get(k.b.getContext(), 3), address)};
}

UnitStaging::UnitStaging(KernelBuilder &k, const SequenceSideView &side,
                         Value kvHead, const ByteViews &views,
                         int64_t regionBase, unsigned stages, int64_t unitBytes,
                         SegmentSource source, Value first, Value last,
                         Value step)
    : k(k), side(side), kvHead(kvHead), views(views), count(stages),
      unitBytes(unitBytes), source(std::move(source)), first(first), last(last),
      step(step) {
  Value tid = k.threadId();
  lane = k.rem(tid, 32);
  warpBase =
      k.add(k.mul(k.div(tid, 32), count * unitBytes), k.index(regionBase));
}

UnitStaging UnitStaging::start(KernelBuilder &k, const SequenceSideView &side,
                               Value kvHead, const ByteViews &views,
                               int64_t regionBase, unsigned stages,
                               int64_t unitBytes, SegmentSource source,
                               Value first, Value last, Value step) {
  assert(stages >= 2 && "a unit in use and one in flight");
  assert(unitBytes % 16 == 0 && "copies of 16 bytes");
  UnitStaging staging(k, side, kvHead, views, regionBase, stages, unitBytes,
                      std::move(source), first, last, step);
  for (int64_t i = 0; i + 1 < staging.count; ++i) {
    staging.copyUnit(k.add(first, k.mul(step, k.index(i))), k.index(i),
                     Value());
    NVVM::CpAsyncCommitGroupOp::create(k.b, k.loc);
  }
  return staging;
}

Value UnitStaging::stageBase(Value stageIndex) const {
  return k.add(warpBase, k.mul(stageIndex, unitBytes));
}

Value UnitStaging::await(Value stageIndex) const {
  // The groups after the current unit's: the N - 2 newer ones.
  NVVM::CpAsyncWaitGroupOp::create(k.b, k.loc, uint32_t(count - 2));
  NVVM::SyncWarpOp::create(k.b, k.loc, k.i32(-1));
  return stageBase(stageIndex);
}

Value UnitStaging::pageAhead(Value unitToken) const {
  return pageOf(k.add(unitToken, k.mul(step, k.index(count - 1))));
}

void UnitStaging::copyAhead(Value unitToken, Value stageIndex,
                            Value page) const {
  Value ahead = k.add(unitToken, k.mul(step, k.index(count - 1)));
  // (stageIndex + N - 1) mod N: the stage read before this unit's.
  Value previous = arith::SelectOp::create(
      k.b, k.loc, k.cmp(arith::CmpIPredicate::eq, stageIndex, k.index(0)),
      k.index(count - 1), k.sub(stageIndex, k.index(1)));
  copyUnit(ahead, previous, page);
  NVVM::CpAsyncCommitGroupOp::create(k.b, k.loc);
}

Value UnitStaging::pageOf(Value unitToken) const {
  auto ifOp =
      scf::IfOp::create(k.b, k.loc, TypeRange{k.b.getI32Type()},
                        k.cmp(arith::CmpIPredicate::ult, unitToken, last),
                        /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(k.b);
  k.b.setInsertionPointToStart(ifOp.thenBlock());
  Value slot = k.div(unitToken, side.pageTokens);
  scf::YieldOp::create(k.b, k.loc, side.pageIndex(k.b, k.loc, slot));
  k.b.setInsertionPointToStart(ifOp.elseBlock());
  scf::YieldOp::create(k.b, k.loc, k.i32(0));
  return ifOp.getResult(0);
}

Value UnitStaging::nextStage(Value stageIndex) const {
  Value next = k.add(stageIndex, k.index(1));
  return arith::SelectOp::create(
      k.b, k.loc, k.cmp(arith::CmpIPredicate::eq, next, k.index(count)),
      k.index(0), next);
}

void UnitStaging::copyUnit(Value unitToken, Value stageIndex,
                           Value page) const {
  const int64_t segments = unitBytes / 16;
  k.ifThen(k.cmp(arith::CmpIPredicate::ult, unitToken, last), [&] {
    Value blockBase, slot;
    if (page) {
      blockBase = side.blockBase(k.b, k.loc, kvHead, page);
      slot = k.rem(unitToken, side.pageTokens);
    } else {
      std::tie(blockBase, slot) = side.locate(k.b, k.loc, kvHead, unitToken);
    }
    Value base = stageBase(stageIndex);
    const ByteViews &pool = side.reader->getPool();
    for (int64_t firstSegment = 0; firstSegment < segments;
         firstSegment += 32) {
      Value segment = k.add(lane, k.index(firstSegment));
      auto issue = [&] {
        Value from = source(blockBase, slot, segment, firstSegment);
        NVVM::CpAsyncOp::create(
            k.b, k.loc,
            views.address(k.b, k.loc, k.add(base, k.mul(segment, 16))),
            pool.address(k.b, k.loc, from), 16, NVVM::LoadCacheModifierKind::CG,
            /*cpSize=*/Value());
      };
      if (firstSegment + 32 <= segments)
        issue();
      else
        k.ifThen(k.cmp(arith::CmpIPredicate::ult, segment, k.index(segments)),
                 issue);
    }
  });
}
