//===- GPULowering.h - kvc-lower-to-gpu's options and checks ----*- C++ -*-===//
//
// The state kvc-lower-to-gpu's patterns share (its options, the kernel
// module) and the check that runs before them: every kvc op must have
// kernels (CheckLowerable.cpp), or the pass fails at the op.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOGPU_GPULOWERING_H
#define KVC_LIB_CONVERSION_KVCTOGPU_GPULOWERING_H

#include "AttendKernels.h"

#include "../KVCToLoops/Lowering.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"

namespace mlir {
namespace kvc {

struct GPULowering {
  LoweringContext context;
  unsigned splitTokens, splitBlocks, blockThreads, minBlocksPerSM;
  CodeToFloat codeToFloat;
  KeyProduct keyProduct;
  ValueProduct valueProduct;
  FoldedCodes foldedCodes;
  L2Prefetch l2Prefetch;
  uint64_t l2PrefetchBytes;
  unsigned keyStages, valueStages;
  CombineMode combine;
  /// Bytes of shared memory a split block may take (static and dynamic).
  unsigned maxSharedMemory;
  gpu::GPUModuleOp kernels;
  mutable unsigned nextKernel = 0;
  /// kvc.quantize ops to lower (checkLowerable counts them).
  unsigned quantizeOps = 0;
};

/// True when the kvc op (or a call emitted in its place) sits in the single
/// block of a function: its stream call then dominates every later kvc op
/// and the return, so the function's ops form one chain of streams
/// (orderOpStreams). Ops nested in regions synchronize their own stream.
inline bool joinsStreamChain(Operation *op) {
  auto func = dyn_cast_or_null<func::FuncOp>(op->getParentOp());
  return func && func.getBody().hasOneBlock();
}

/// What the kernels do not cover yet is an error at the op, never a
/// fallback; records the encodings of each attention's and append's KV
/// heads in `lowering.context` and counts the kvc.quantize ops.
LogicalResult checkLowerable(ModuleOp module, GPULowering &lowering);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOGPU_GPULOWERING_H
