//===- L2Prefetch.h - the split kernel's L2 prefetch of pages -*- C++ -*-===//
//
// A split block reads its pages a warp and a unit (or tile) at a time, each
// load waiting for DRAM; the profile of the first GPU run showed 71 % of the
// stall cycles there (benchmarks/results/gpu.md). With `l2-prefetch`, the
// block first asks the memory system for all of a side's page blocks of its
// split at once, into L2, without holding a register: the passes' loads
// then wait for L2 instead of DRAM.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOGPU_L2PREFETCH_H
#define KVC_LIB_CONVERSION_KVCTOGPU_L2PREFETCH_H

#include "KernelBuilder.h"

#include "../KVCToLoops/PageReader.h"

namespace mlir {
namespace kvc {

/// Which prefetch instructions bring a split's page blocks into L2.
enum class L2Prefetch {
  /// None: every load goes to DRAM when the pass reaches it.
  None,
  /// prefetch.global.L2, one a 128-byte line.
  Lines,
  /// cp.async.bulk.prefetch.L2.global, one a page block.
  Bulk,
  // (LLVM's NVPTX backend selects both from sm_90 on: kvc-gpu-pipeline
  // rejects them for older chips.)
};

/// The bytes a 128-byte-line prefetch covers (L2's line).
constexpr uint64_t kL2LineBytes = 128;

/// Prefetches into L2 KV head `head`'s blocks of the pages of `side` that
/// hold compressed tokens of [start, start + count): at most
/// max(1, budgetBytes / block bytes) pages from the first, so that the
/// blocks resident on an SM do not push each other's data out of L2.
/// Threads 0 .. `threads` - 1 share the work (lines or blocks); pages the
/// page table marks as released (negative) are skipped.
void emitL2Prefetch(KernelBuilder &k, const SequenceSideView &side, Value head,
                    Value start, Value count, L2Prefetch mode,
                    uint64_t budgetBytes, unsigned threads);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOGPU_L2PREFETCH_H
