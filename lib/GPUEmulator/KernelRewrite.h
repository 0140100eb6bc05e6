//===- KernelRewrite.h - NVPTX kernels rewritten to run on the host -*- C++ -*-===//
//
// The GPU emulator runs kvc's generated kernels from the LLVM bitcode that
// `kvc-gpu-pipeline format=llvm` embeds (the NVVM target's "offload"
// object: the same optimized IR that becomes PTX). rewriteForHost turns that
// module into one the host's JIT compiles: every NVVM intrinsic and every
// inline PTX instruction becomes a call of the emulator's C functions
// (EmulatorAbi.h), kernels get an entry `__kvc_emu_entry.<name>(void
// **params)` taking cuLaunchKernel's argument array, and shared-memory
// variables become named globals the emulator poisons before each block.
// Anything it does not know is an error naming the intrinsic or the PTX.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_GPUEMULATOR_KERNELREWRITE_H
#define KVC_GPUEMULATOR_KERNELREWRITE_H

#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace llvm {
class DataLayout;
class Module;
} // namespace llvm

namespace kvc {
namespace gpuemu {

/// A shared-memory variable of the rewritten module: its (now external)
/// symbol name and size in bytes; 0 bytes for `extern` dynamic shared memory.
struct SharedVariable {
  std::string symbol;
  uint64_t bytes = 0;
  /// Where the variable starts past the symbol's address (its declared
  /// alignment: the rewrite places it at an odd multiple of it).
  uint64_t offset = 0;
};

struct RewrittenModule {
  /// The kernels' names (their entries are entryName(kernel)).
  std::vector<std::string> kernels;
  std::vector<SharedVariable> shared;
};

/// The symbol of a kernel's host entry.
std::string entryName(const std::string &kernel);

/// Rewrites `module` (NVPTX) in place for `hostLayout` and `hostTriple`.
llvm::Expected<RewrittenModule> rewriteForHost(llvm::Module &module,
                                               const llvm::DataLayout &hostLayout,
                                               const std::string &hostTriple);

} // namespace gpuemu
} // namespace kvc

#endif // KVC_GPUEMULATOR_KERNELREWRITE_H
