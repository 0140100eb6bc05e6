//===- CombineKernel.h - the merge of decode attention's splits -*- C++ -*-===//
//
// The log-sum-exp merge of the split kernel's partial outputs, by a kernel
// of its own (combine=kernel) or at the end of the split kernel, by the
// last block of a (sequence, KV head) to finish its split (combine=fused:
// one launch an attention, and no wait for the slowest split's wave before
// the merge starts).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOGPU_COMBINEKERNEL_H
#define KVC_LIB_CONVERSION_KVCTOGPU_COMBINEKERNEL_H

#include "KernelBuilder.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

namespace mlir {
namespace kvc {

/// Where the splits are merged.
enum class CombineMode {
  /// A combine kernel, grid (query heads, batch), after the split kernels.
  Kernel,
  /// The split kernel's last block of each (sequence, KV head).
  Fused,
};

/// Threads of a combine kernel's block.
constexpr int64_t kCombineThreads = 128;

/// The shared memory a block's merge takes (f32): the warps' weighted
/// partial outputs [warps][D], their weighted sums [warps] and the
/// maximum's reduction scratch [warps].
SmallVector<Type> combineBufferTypes(MLIRContext *ctx, unsigned threads,
                                     int64_t headDim);

/// What a merge reads and writes.
struct CombineSite {
  int64_t batch, queryHeads, headDim;
  unsigned threads; ///< of the block that merges
  Type outElementType;
  Value workspace; ///< !llvm.ptr<1>: the split kernel's (workspaceBytes)
  Value out;       ///< memref<B x Hq x 1 x D> of outElementType
  /// combineBufferTypes' buffers.
  Value warpOutputs, warpSums, scratch;
};

/// The block merges the `splits` (index) of output row `row` (batch * query
/// heads + query head) into `out`, or writes NaN there when `ok` (i32) is
/// 0, a failed layout check: its threads
/// take the splits' maxima a split each (then a block reduction), its warps
/// the weighted partial outputs a split each (a lane D / 32 channels, one
/// vector load), and the warps' sums meet in shared memory, added in warp
/// order. Every thread of the block must reach it (barriers); a merge may
/// follow another at once.
void emitCombine(KernelBuilder &k, const CombineSite &site, Value row,
                 Value splits, Value ok);

/// The combine kernel. Grid (query heads, batch), block kCombineThreads.
/// Arguments: (workspace: !llvm.ptr, out memref<B x Hq x 1 x D>, splits:
/// index, ok: i32). One emitCombine a block. Writes NaN when `ok` is 0
/// (the runtime's layout is not the compiled one).
gpu::GPUFuncOp buildCombineKernel(OpBuilder &b, Location loc,
                                  gpu::GPUModuleOp module, StringRef name,
                                  int64_t batch, int64_t queryHeads,
                                  int64_t headDim, Type outElementType);

/// combine=fused: thread 0 of a split block records the first output row
/// of its KV head (batch * query heads + the KV head's first query head)
/// and the split count in `state` (the workgroup i32 [3] of
/// emitFusedCombine), so that the merge reads them there: the block's
/// coordinates, the row, or what LLVM would reuse of the split kernel's
/// own arithmetic on the split count, kept in registers across the value
/// pass, made ptxas spill the largest tensor-core kernels (GQA 7 and 8,
/// head_dim 128).
void recordFusedCombineState(KernelBuilder &k, Value state, Value firstRow,
                             Value splits);

/// combine=fused, at the end of the split kernel's work for a valid layout
/// (every thread reaches it, after recordFusedCombineState): once the block's
/// partials are written, thread 0 counts the block in, with an atomic add
/// on the counter of the block's (sequence, KV head) in `counters`
/// (!llvm.ptr to kvc_rt_mlir_gpu_counters' int32 [B][KV heads]) between
/// a release and an acquire fence at GPU scope; the block that counts the
/// last of the `splits` merges the splits of the KV head's `group` output
/// rows and sets the counter back to zero for the next launch. `state`[0]
/// carries the decision to the block's threads.
void emitFusedCombine(KernelBuilder &k, const CombineSite &site, Value counters,
                      int64_t group, Value state);

/// combine=fused when the layout check failed (the counters may be null):
/// nothing counts, the block of split 0 writes NaN into the KV head's
/// `group` output rows from `firstRow`.
void emitFusedCombineFailure(KernelBuilder &k, const CombineSite &site,
                             int64_t group, Value firstRow, Value splitIndex);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOGPU_COMBINEKERNEL_H
