//===- CheckHostBuffers.cpp - The GPU host code leaves buffers alone ------===//
//
// kvc-gpu-pipeline's host code only checks layouts, calls the runtime and
// launches kernels: its tensors are device memory (the caller's), which the
// kernels alone read and write. Bufferization may still leave buffer
// operations in it — a copy of a sliced query into a new buffer, an
// allocation for a result that is not returned — which would run on the
// host against device memory (an illegal access, or a host buffer the
// kernels write). This pass, run after bufferization, makes each an error
// at the op bufferization made it for, in kvc's GPU emulator too (whose
// device memory is the host's and would not notice).
//
//===----------------------------------------------------------------------===//

#include "kvc/Conversion/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir {
namespace kvc {
#define GEN_PASS_DEF_KVCCHECKHOSTBUFFERS
#include "kvc/Conversion/Passes.h.inc"
} // namespace kvc
} // namespace mlir

using namespace mlir;

/// Whether `op` reads or writes the contents of a memref.
static bool accessesBuffer(Operation *op) {
  auto effects = dyn_cast<MemoryEffectOpInterface>(op);
  if (!effects)
    return false;
  SmallVector<MemoryEffects::EffectInstance> instances;
  effects.getEffects(instances);
  return llvm::any_of(instances, [](const MemoryEffects::EffectInstance &e) {
    Value value = e.getValue();
    return value && isa<BaseMemRefType>(value.getType()) &&
           isa<MemoryEffects::Read, MemoryEffects::Write>(e.getEffect());
  });
}

namespace {
struct KVCCheckHostBuffersPass
    : public mlir::kvc::impl::KVCCheckHostBuffersBase<KVCCheckHostBuffersPass> {
  void runOnOperation() override {
    WalkResult result = getOperation().walk<WalkOrder::PreOrder>(
        [&](Operation *op) -> WalkResult {
          // Kernels touch device memory; launches only pass it to them.
          if (isa<gpu::GPUModuleOp, gpu::LaunchFuncOp>(op))
            return WalkResult::skip();
          StringRef what;
          if (isa<memref::AllocOp, memref::AllocaOp>(op))
            what = "allocates a buffer in host memory, which the kernels "
                   "cannot use";
          else if (accessesBuffer(op))
            what = "reads or writes a buffer on the host, and the buffers are "
                   "device memory";
          else
            return WalkResult::advance();
          op->emitOpError("kvc-gpu-pipeline: the host code ")
              << what
              << " (left by bufferization); give kvc ops function arguments, "
                 "reshapes of them or kvc op results, not slices, and return "
                 "their results";
          return WalkResult::interrupt();
        });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};
} // namespace
