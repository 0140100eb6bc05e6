//===- PrefetchCheck.h - emulated L2 prefetches against a cache -*- C++ -*-===//
//
// With l2-prefetch, the split kernels prefetch page blocks into L2. A
// prefetch changes no result, so no oracle sees a wrong one: the programs
// that run the kernels in the GPU emulator on a runtime cache (kvc-run
// --gpu-emulator, kvc_attention_check_emu) check each against the cache
// instead (the emulator records them: takePrefetches). Links against the
// kvc runtime (kvc_runtime.h), as those programs do.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_GPUEMULATOR_PREFETCHCHECK_H
#define KVC_GPUEMULATOR_PREFETCHCHECK_H

#include "kvc/GPUEmulator/Prefetches.h"
#include "kvc_runtime.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace kvc::gpuemu {

struct PrefetchCounts {
  uint64_t lines = 0, blocks = 0, blockBytes = 0;
};

/// Takes the prefetches the emulated kernels issued since the last call and
/// checks them against layer 0 of `cache` and its `numSeqs` sequences
/// `seqs`: every address inside a block of one head of a page that holds
/// compressed tokens of one of the sequences (bulk prefetches: the whole
/// block, nothing more), and the blocks of heads whose blocks are as large
/// prefetched as often (the split blocks of all heads read the same pages,
/// as many as l2-prefetch-bytes allows blocks of their size). Adds them to
/// `counts`; returns the first problem, or "".
std::string checkPrefetches(const kvc_rt_cache *cache, const kvc_rt_seq *seqs,
                            size_t numSeqs, PrefetchCounts &counts);

} // namespace kvc::gpuemu

#endif // KVC_GPUEMULATOR_PREFETCHCHECK_H
