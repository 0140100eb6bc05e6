//===- L2Prefetch.h - the split kernel's L2 prefetch of pages -*- C++ -*-===//
//
// A split block reads its pages a warp and a unit (or tile) at a time, each
// load waiting for DRAM; the profile of the first GPU run showed 71 % of the
// stall cycles there (benchmarks/results/gpu.md). With `l2-prefetch`, the
// block first asks the memory system for its split's page blocks at once,
// into L2, without holding a register: the passes' loads then wait for L2
// instead of DRAM.
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

/// When emitL2Prefetch is called in the split kernel.
enum class L2PrefetchPhase {
  /// At the kernel's start: the keys' pages, then as many of the values'
  /// as fit in what the keys left of the budget (all of them for a
  /// 512-token split of 2-bit keys and values: 8 blocks of 3 KB each).
  AtStart,
  /// After the key pass: the rest of the values' pages (the same range and
  /// arithmetic again: nothing is kept in registers across the key pass).
  AfterKeyPass,
};

/// Prefetches into L2 the page blocks of `phase`. The split's pages of a
/// side are those that hold compressed tokens of [start, start + count);
/// the block prefetches KV head `head`'s blocks of the first max(1,
/// budgetBytes / block bytes) of them, so that the blocks resident on an
/// SM do not push each other's data out of L2. Pages the page table marks
/// as released (negative) are skipped; threads 0 .. `threads` - 1 share
/// the work (lines or blocks).
void emitL2Prefetch(KernelBuilder &k, L2PrefetchPhase phase,
                    const SequenceSideView &keys,
                    const SequenceSideView &values, Value head, Value start,
                    Value count, L2Prefetch mode, uint64_t budgetBytes,
                    unsigned threads);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOGPU_L2PREFETCH_H
