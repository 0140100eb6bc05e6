//===- KeyStaging.h - key units copied ahead into shared memory -*- C++ -*-===//
//
// key-stages=N of kvc-lower-to-gpu: the tensor-core key pass's interior
// units (channel-axis 2-, 4- and 8-bit keys, read in token pairs) reach
// its warps through shared memory. Each warp owns N stages, each a unit's
// copy (PageReader::tokenPairUnitBytes); while it multiplies unit i, the
// copies of units i + 1 .. i + N - 1 are in flight (cp.async.cg, 16 bytes
// a lane, one commit group a unit), so its loads no longer wait for DRAM
// between units. Needs no registers across the products: cp.async writes
// shared memory directly.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOGPU_KEYSTAGING_H
#define KVC_LIB_CONVERSION_KVCTOGPU_KEYSTAGING_H

#include "AttendKernels.h"
#include "KernelBuilder.h"

namespace mlir {
namespace kvc {

/// Shared-memory bytes of a split block's key stages: `warps` x `stages`
/// copies of a unit of `bits`-bit channel-axis keys of `headDim` channels.
int64_t keyStagingBytes(int64_t headDim, unsigned bits, unsigned warps,
                        unsigned stages);

/// A workgroup memref<N x i8> as byte views (an !llvm.ptr<3>).
ByteViews sharedBytes(KernelBuilder &k, Value workgroupMemref);

/// One warp's pipeline of unit copies over the interior units first, first
/// + step, ... (< last) of a split (spec.keyStages stages in `stages`).
class KeyStaging {
public:
  /// The copies of the first N - 1 units issued, one commit group each
  /// (empty past `last`).
  static KeyStaging start(KernelBuilder &k, const SplitKernelSpec &spec,
                          const SequenceSideView &keys, Value kvHead,
                          const ByteViews &stages, Value first, Value last,
                          Value step);
  /// Waits for the copy in stage `stageIndex` (the current unit's: every
  /// group but the N - 2 newest complete, then the warp's lanes meet, so
  /// each sees the others' copies and has done with the stage the next
  /// copy overwrites). Returns the stage's byte offset in the views.
  Value await(Value stageIndex) const;
  /// Issues the copy of unit `unitToken` + (N - 1) * step into the stage
  /// before `stageIndex` (the one the previous unit was read from), if it
  /// is before `last`, and commits a group either way.
  void copyAhead(Value unitToken, Value stageIndex) const;
  /// The stage after `stageIndex`.
  Value nextStage(Value stageIndex) const;
  /// The interior units' range as given to start.
  Value getFirst() const { return first; }
  Value getEnd() const { return last; }

private:
  KeyStaging(KernelBuilder &k, const SplitKernelSpec &spec,
             const SequenceSideView &keys, Value kvHead,
             const ByteViews &stages, Value first, Value last, Value step);
  Value stageBase(Value stageIndex) const;
  void copyUnit(Value unitToken, Value stageIndex) const;

  KernelBuilder &k;
  const SequenceSideView &keys;
  Value kvHead;
  ByteViews stages;
  Value first, last, step, lane, warpBase;
  int64_t count, unitBytes;
};

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOGPU_KEYSTAGING_H
