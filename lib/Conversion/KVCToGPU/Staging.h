//===- Staging.h - a warp's next units copied ahead into shared memory -*- C++
//-*-===//
//
// key-stages=N and value-stages=N of kvc-lower-to-gpu: the tensor-core
// passes' interior units reach their warps through shared memory. Each warp
// owns N stages, each a unit's copy; while it multiplies unit i, the copies
// of units i + 1 .. i + N - 1 are in flight (cp.async.cg, 16 bytes a lane,
// one commit group a unit), so its loads no longer wait for DRAM between
// units. Needs no registers across the products: cp.async writes shared
// memory directly. The key pass's unit is 32 tokens of channel-axis codes
// (PageReader::tokenPairUnitBytes), the value pass's 16 token-axis rows
// (PageReader::tokenRowsBytes).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOGPU_STAGING_H
#define KVC_LIB_CONVERSION_KVCTOGPU_STAGING_H

#include "AttendKernels.h"
#include "KernelBuilder.h"

#include <algorithm>
#include <functional>

namespace mlir {
namespace kvc {

/// Bytes of a key unit's copy: 32 tokens of `bits`-bit channel-axis codes
/// of `headDim` channels and a group row's (scale, zero) pairs
/// (PageReader::tokenPairUnitBytes).
int64_t keyUnitBytes(int64_t headDim, unsigned bits);
/// Bytes of a value unit's copy: 16 token-axis rows of `bits`-bit codes in
/// groups of `group` channels and their (scale, zero) pairs
/// (PageReader::tokenRowsBytes).
int64_t valueUnitBytes(int64_t headDim, unsigned bits, unsigned group);
/// Tokens of a value unit: the value pass's interior blocks.
constexpr int64_t kValueUnitTokens = 16;

/// The split kernel's stage buffer (dynamic shared memory): the key stages
/// from its start and, over them, the value stages and then the value
/// pass's sums (the key pass is done with its stages before the value pass
/// starts).
struct StageBufferBytes {
  int64_t keys = 0, values = 0, valueSums = 0;
  /// The buffer's size: 0 without stages.
  int64_t total() const {
    return keys || values ? std::max(keys, values + valueSums) : 0;
  }
};

/// The stage buffer of a split block of `blockThreads` threads with
/// `keyStages` and `valueStages` (0: none) for KV heads of `encoding`
/// serving `queryHeadsPerKVHead` query heads; the value pass's sums
/// move into it when the tensor-core value pass (`valueSums`) has stages.
StageBufferBytes
stageBufferBytes(MLIRContext *ctx, unsigned blockThreads,
                 int64_t queryHeadsPerKVHead, int64_t headDim,
                 unsigned keyStages, unsigned valueStages, bool valueSums,
                 const ::kvc::numerics::CacheEncoding &encoding);

/// The stage buffer of the split kernel of `spec`: its total() is the
/// kernel launch's dynamic shared memory.
StageBufferBytes stageBufferBytes(const SplitKernelSpec &spec);

/// A workgroup memref<N x i8> as byte views (an !llvm.ptr<3>).
ByteViews sharedBytes(KernelBuilder &k, Value workgroupMemref);

/// The pool offset of 16-byte segment `segment` of the copy of the unit at
/// slot `slot` of the block at `blockBase`; `firstSegment` is the warp's
/// first segment of this copy instruction (lane 0's), static.
using SegmentSource = std::function<Value(Value blockBase, Value slot,
                                          Value segment, int64_t firstSegment)>;

/// One warp's pipeline of unit copies over the interior units at tokens
/// first, first + step, ... (< last) of a split: `stages` stages of
/// `unitBytes` from byte `regionBase` of `views` (the block's warps' stages
/// one after another).
class UnitStaging {
public:
  /// The copies of the first N - 1 units issued, one commit group each
  /// (empty past `last`).
  static UnitStaging start(KernelBuilder &k, const SequenceSideView &side,
                           Value kvHead, const ByteViews &views,
                           int64_t regionBase, unsigned stages,
                           int64_t unitBytes, SegmentSource source, Value first,
                           Value last, Value step);
  /// Waits for the copy in stage `stageIndex` (the current unit's: every
  /// group but the N - 2 newest complete, then the warp's lanes meet, so
  /// each sees the others' copies and has done with the stage the next
  /// copy overwrites). Returns the stage's byte offset in the views.
  Value await(Value stageIndex) const;
  /// The page-table entry (i32) of the unit copyAhead(unitToken) copies:
  /// loaded at the iteration's start, before the wait, so that the load
  /// and the wait overlap (carried from the iteration before instead, it
  /// held a register through the products: a 4-byte spill on sm_80).
  Value pageAhead(Value unitToken) const;
  /// Issues the copy of unit `unitToken` + (N - 1) * step, in page `page`
  /// (pageAhead), into the stage before `stageIndex` (the one the previous
  /// unit was read from), if it is before `last`, and commits a group
  /// either way.
  void copyAhead(Value unitToken, Value stageIndex, Value page) const;
  /// The stage after `stageIndex`.
  Value nextStage(Value stageIndex) const;
  /// The interior units' range as given to start.
  Value getFirst() const { return first; }
  Value getEnd() const { return last; }

private:
  UnitStaging(KernelBuilder &k, const SequenceSideView &side, Value kvHead,
              const ByteViews &views, int64_t regionBase, unsigned stages,
              int64_t unitBytes, SegmentSource source, Value first, Value last,
              Value step);
  Value stageBase(Value stageIndex) const;
  /// The copy of the unit at `unitToken` (in page `page`, an i32, or
  /// located here when null) into stage `stageIndex`, if before `last`.
  void copyUnit(Value unitToken, Value stageIndex, Value page) const;
  /// The page-table entry of `unitToken` if before `last`, else 0.
  Value pageOf(Value unitToken) const;

  KernelBuilder &k;
  const SequenceSideView &side;
  Value kvHead;
  ByteViews views;
  int64_t count, unitBytes;
  SegmentSource source;
  Value first, last, step, lane, warpBase;
};

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOGPU_STAGING_H
