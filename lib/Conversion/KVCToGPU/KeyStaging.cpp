//===- KeyStaging.cpp - key units copied ahead into shared memory ---------===//

#include "KeyStaging.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::kvc;

int64_t mlir::kvc::keyStagingBytes(int64_t headDim, unsigned bits,
                                   unsigned warps, unsigned stages) {
  // PageReader::tokenPairUnitBytes: 32 tokens' codes and a group row's
  // (scale, zero) pairs.
  return int64_t(warps) * stages * 4 * headDim * (bits + 1);
}

ByteViews mlir::kvc::sharedBytes(KernelBuilder &k, Value workgroupMemref) {
  Value at = memref::ExtractAlignedPointerAsIndexOp::create(k.b, k.loc,
                                                            workgroupMemref);
  Value address = arith::IndexCastOp::create(k.b, k.loc, k.b.getI64Type(), at);
  return ByteViews{LLVM::IntToPtrOp::create(
      k.b, k.loc, LLVM::LLVMPointerType::get(k.b.getContext(), 3), address)};
}

KeyStaging::KeyStaging(KernelBuilder &k, const SplitKernelSpec &spec,
                       const SequenceSideView &keys, Value kvHead,
                       const ByteViews &stages, Value first, Value last,
                       Value step)
    : k(k), keys(keys), kvHead(kvHead), stages(stages), first(first),
      last(last), step(step), count(spec.keyStages),
      unitBytes(keys.reader->tokenPairUnitBytes()) {
  Value tid = k.threadId();
  lane = k.rem(tid, 32);
  warpBase = k.mul(k.div(tid, 32), count * unitBytes);
}

KeyStaging KeyStaging::start(KernelBuilder &k, const SplitKernelSpec &spec,
                             const SequenceSideView &keys, Value kvHead,
                             const ByteViews &stages, Value first, Value last,
                             Value step) {
  assert(spec.keyStages >= 2 && "a unit in use and one in flight");
  KeyStaging staging(k, spec, keys, kvHead, stages, first, last, step);
  for (int64_t i = 0; i + 1 < staging.count; ++i) {
    staging.copyUnit(k.add(first, k.mul(step, k.index(i))), k.index(i));
    NVVM::CpAsyncCommitGroupOp::create(k.b, k.loc);
  }
  return staging;
}

Value KeyStaging::stageBase(Value stageIndex) const {
  return k.add(warpBase, k.mul(stageIndex, unitBytes));
}

Value KeyStaging::await(Value stageIndex) const {
  // The groups after the current unit's: the N - 2 newer ones.
  NVVM::CpAsyncWaitGroupOp::create(k.b, k.loc, uint32_t(count - 2));
  NVVM::SyncWarpOp::create(k.b, k.loc, k.i32(-1));
  return stageBase(stageIndex);
}

void KeyStaging::copyAhead(Value unitToken, Value stageIndex) const {
  Value ahead = k.add(unitToken, k.mul(step, k.index(count - 1)));
  // (stageIndex + N - 1) mod N: the stage read before this unit's.
  Value previous = arith::SelectOp::create(
      k.b, k.loc, k.cmp(arith::CmpIPredicate::eq, stageIndex, k.index(0)),
      k.index(count - 1), k.sub(stageIndex, k.index(1)));
  copyUnit(ahead, previous);
  NVVM::CpAsyncCommitGroupOp::create(k.b, k.loc);
}

Value KeyStaging::nextStage(Value stageIndex) const {
  Value next = k.add(stageIndex, k.index(1));
  return arith::SelectOp::create(
      k.b, k.loc, k.cmp(arith::CmpIPredicate::eq, next, k.index(count)),
      k.index(0), next);
}

void KeyStaging::copyUnit(Value unitToken, Value stageIndex) const {
  const PageReader &reader = *keys.reader;
  const int64_t segments = unitBytes / 16;
  const int64_t codeSegments = reader.tokenPairUnitCodeBytes() / 16;
  // Code and parameter segments meet at a multiple of 32 (head_dim 64 or
  // 128), so each lane's i-th segment is of one kind for the whole warp.
  assert(codeSegments % 32 == 0 && "codes end at a warp's multiple");
  k.ifThen(k.cmp(arith::CmpIPredicate::ult, unitToken, last), [&] {
    auto [blockBase, slot] = keys.locate(k.b, k.loc, kvHead, unitToken);
    Value base = stageBase(stageIndex);
    const ByteViews &pool = reader.getPool();
    for (int64_t firstSegment = 0; firstSegment < segments;
         firstSegment += 32) {
      Value segment = k.add(lane, k.index(firstSegment));
      auto issue = [&] {
        Value from =
            reader.tokenPairUnitSegment(k.b, k.loc, blockBase, slot, segment,
                                        /*code=*/firstSegment < codeSegments);
        NVVM::CpAsyncOp::create(
            k.b, k.loc,
            stages.address(k.b, k.loc, k.add(base, k.mul(segment, 16))),
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
