//===- Prefetches.h - kvc-run: the emulated kernels' L2 prefetches -*- C++ -*-===//
//
// With --gpu-emulator and l2-prefetch in --gpu-options, the split kernels
// prefetch page blocks into L2. A prefetch changes no result, so the
// oracle cannot see a wrong one: kvc-run checks each against the cache
// instead (the GPU emulator records them, kvc::gpuemu::takePrefetches).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_TOOLS_KVC_RUN_PREFETCHES_H
#define KVC_TOOLS_KVC_RUN_PREFETCHES_H

#include "kvc_runtime.h"

#include "llvm/ADT/ArrayRef.h"

#include <cstdint>
#include <string>

namespace kvc::run {

struct PrefetchCounts {
  uint64_t lines = 0, blocks = 0, blockBytes = 0;
};

/// Takes the prefetches the emulated kernels issued since the last call and
/// checks them against layer 0 of `cache` and its sequences `seqs`: every
/// address inside a block of one head of a page that holds compressed
/// tokens of one of the sequences (bulk prefetches: the whole block,
/// nothing more), and every head's blocks of each side prefetched as often
/// as the others' (the split blocks of all heads read the same pages).
/// Adds them to `counts`; returns the first problem, or "".
std::string checkPrefetches(const kvc_rt_cache *cache,
                            llvm::ArrayRef<kvc_rt_seq> seqs,
                            PrefetchCounts &counts);

} // namespace kvc::run

#endif // KVC_TOOLS_KVC_RUN_PREFETCHES_H
