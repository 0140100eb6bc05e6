//===- GPUChip.h - The NVIDIA chips kvc-gpu-pipeline compiles for -*- C++ -*-//
//
// kvc-gpu-pipeline's chip= and features= reach LLVM's NVPTX backend through
// the NVVM target. A name or feature it does not know, or a PTX version
// older than the chip, makes the backend abort the tool; these checks turn
// them into the pipeline's errors first.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_PIPELINES_GPUCHIP_H
#define KVC_LIB_PIPELINES_GPUCHIP_H

#include "mlir/Support/LLVM.h"
#include "llvm/ADT/StringRef.h"

#include <string>

namespace mlir {
namespace kvc {

/// A processor of LLVM's NVPTX backend, e.g. sm_90a.
struct GPUChip {
  std::string name;
  /// The compute capability without its suffix: 90 for sm_90a.
  unsigned smVersion = 0;
  /// The first PTX ISA version (times ten) with this target.
  unsigned minimumPTX = 0;
  /// The most shared memory a block may opt into; 0 when kvc's table does
  /// not list the chip.
  unsigned sharedMemoryLimit = 0;
};

/// `name` as a processor of LLVM's NVPTX backend; on failure `message` says
/// why not.
FailureOr<GPUChip> lookupGPUChip(StringRef name, std::string &message);

/// The NVPTX features to compile with: `features`, comma-separated +name or
/// -name items of LLVM's NVPTX backend, plus `+ptx<max(80, minimumPTX)>`
/// when it names no PTX version (8.0: the first with the L2 bulk
/// prefetch). On failure (an unknown item, or a PTX version older than
/// `minimumPTX`, which `neededBy` needs) `message` says why.
FailureOr<std::string> nvptxFeatures(StringRef features, unsigned minimumPTX,
                                     StringRef neededBy, std::string &message);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_PIPELINES_GPUCHIP_H
