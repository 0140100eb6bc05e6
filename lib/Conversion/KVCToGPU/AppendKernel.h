//===- AppendKernel.h - the kvc.append kernel -------------------*- C++ -*-===//
//
// The fused quantize-and-pack kernel of kvc.append: after the host has
// reserved the tokens (kvc_rt_mlir_reserve_append), it flushes a residual
// block into the pages (keys and values by their own encodings, through
// GroupQuantizer) and stages the new tokens' fp16 rows, with the CPU
// lowering's AppendWriter, so both paths write the runtime's bytes.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOGPU_APPENDKERNEL_H
#define KVC_LIB_CONVERSION_KVCTOGPU_APPENDKERNEL_H

#include "../KVCToLoops/Lowering.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

#include <string>

namespace mlir {
namespace kvc {

/// What one append kernel is specialized to: one kvc.append and one run of
/// KV heads with the same encoding.
struct AppendKernelSpec {
  std::string name;
  const CachePageLayout *pages; ///< every KV head's blocks
  unsigned runFirst;            ///< the run's first KV head
  int64_t headDim;
  unsigned pageTokens;
  uint64_t residualHeadBytes;
  MemRefType keys, values; ///< B x H x N x D, static
  unsigned blockThreads;
  unsigned minBlocksPerSM; ///< nvvm.minctasm; 0: none
};

/// Grid (KV heads of the run, batch, 2: keys then values), block
/// `blockThreads`. Arguments: (records (kvc_rt_gpu_append), K pool, V pool:
/// !llvm.ptr; keys, values). A block's threads share the flush's groups,
/// meet at a barrier, then share the staged elements.
gpu::GPUFuncOp buildAppendKernel(OpBuilder &b, Location loc,
                                 gpu::GPUModuleOp module,
                                 const AppendKernelSpec &spec);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOGPU_APPENDKERNEL_H
