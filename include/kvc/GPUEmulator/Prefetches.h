//===- Prefetches.h - the GPU emulator's L2 prefetch record -*- C++ -*-===//
//
// Apart from Emulator.h (no LLVM headers), for programs that check the
// prefetches of emulated kernels (PrefetchCheck.h).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_GPUEMULATOR_PREFETCHES_H
#define KVC_GPUEMULATOR_PREFETCHES_H

#include <cstdint>
#include <vector>

namespace kvc {
namespace gpuemu {

/// A prefetch into L2 a kernel thread issued: prefetch.global.L2 (the byte
/// it names, `bytes` 1) or cp.async.bulk.prefetch.L2 (`bulk`: its range).
/// Bulk prefetches that break the PTX ISA's 16-byte alignment stop the
/// grid with an error; the ends of every range are read (an address
/// outside host memory faults there).
struct Prefetch {
  const void *address;
  uint64_t bytes;
  bool bulk;
};

/// The prefetches of the launches since the last call (the first 2^20),
/// taken from the log. Thread-safe.
std::vector<Prefetch> takePrefetches();

} // namespace gpuemu
} // namespace kvc

#endif // KVC_GPUEMULATOR_PREFETCHES_H
