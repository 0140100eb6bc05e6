//===- AttendKernels.h - decode attention kernels for kvc.attend -*- C++ -*-===//
//
// Builds the gpu.func kernels of split-K (flash-decoding) decode attention
// over the runtime's packed pages. Elements are read with the CPU lowering's
// PageReader, so the GPU kernels and the CPU loops share one definition of
// the numerics (docs/layout.md).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOGPU_ATTENDKERNELS_H
#define KVC_LIB_CONVERSION_KVCTOGPU_ATTENDKERNELS_H

#include "CombineKernel.h"
#include "L2Prefetch.h"

#include "../KVCToLoops/PageReader.h"

#include "kvc/Numerics/Encoding.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"

#include <optional>
#include <string>

namespace mlir {
namespace kvc {

/// Where the split kernel's key dot products run.
enum class KeyProduct {
  /// CUDA cores: a thread per token, an f32 multiply and add per channel
  /// and query head.
  FMA,
  /// Tensor cores: a warp per 16 tokens, dequantized keys and the queries
  /// rounded to fp16 into mma.sync.m16n8k16 with f32 accumulation.
  MMA,
};

/// Where the split kernel's value pass runs.
enum class ValueProduct {
  /// CUDA cores: a thread per channel span and token lane, an f32 fma per
  /// channel and query head.
  FMA,
  /// Tensor cores: a warp per 16 tokens, dequantized values rounded to fp16
  /// and the softmax weights as two fp16 parts into mma.sync.m16n8k16 with
  /// f32 accumulation.
  MMA,
};

/// Why KeyProduct::MMA cannot serve a site with these shapes, or "" when it
/// can (head_dim 64 or 128, at most 8 query heads per KV head).
std::string tensorCoreKeysUnsupported(int64_t headDim,
                                      int64_t queryHeadsPerKVHead);

/// Why ValueProduct::MMA cannot serve a site with these shapes, or "" when
/// it can (head_dim 64 or 128, at most 8 query heads per KV head).
std::string tensorCoreValuesUnsupported(int64_t headDim,
                                        int64_t queryHeadsPerKVHead);

/// Whether the softmax of a split kernel whose value pass is `product`
/// over values encoded as `values` also sums each query head's weights
/// times the values' zeros (the tensor-core value pass folding their
/// scales: num::foldsValueScales).
bool softmaxSumsValueZeros(ValueProduct product,
                           const ::kvc::numerics::SideEncoding &values,
                           int64_t headDim);

/// The split kernel's static shared memory (its workgroup attributions):
/// the query vectors [query heads per KV head][D] and the split's scores
/// [query heads per KV head][split-tokens] (f32), the softmax reductions'
/// per-warp values of every query head (maxima, then sums, then with
/// `valueZeroSums` the sums of weight * zero), the tensor-core key
/// pass's fp16 query fragments, the tensor-core value pass's per-warp sums
/// unless they are in the stage buffer (Staging.h), and with a fused
/// combine its merge's buffers (combineBufferTypes) and state (i32 [3]:
/// emitFusedCombine).
struct SplitWorkgroup {
  SmallVector<Type> buffers;
  std::optional<unsigned> queryFragmentsAt, valueSumsAt, combineAt;
  /// The buffers' bytes.
  int64_t bytes() const;
};
SplitWorkgroup splitWorkgroup(MLIRContext *ctx, int64_t queryHeadsPerKVHead,
                              int64_t headDim, unsigned splitTokens,
                              unsigned blockThreads, KeyProduct keyProduct,
                              bool staticValueSums, bool valueZeroSums,
                              bool fusedCombine);

/// The tensor-core value pass's per-warp sums: f32 [warps][query heads per
/// KV head][D] of shared memory.
MemRefType valueSumsType(MLIRContext *ctx, unsigned blockThreads,
                         int64_t queryHeadsPerKVHead, int64_t headDim);

/// Bytes of a shared-memory buffer of `type` (a memref of scalars or
/// vectors).
int64_t sharedBufferBytes(MemRefType type);

/// How the CUDA-core value pass divides a block: each thread takes a span
/// of `spanChannels` channels (spansPerThread of them, one after the other)
/// and the tokens lane, lane + tokenLanes, ...; the tokenLanes threads of a
/// span are adjacent in a warp. The first `activeThreads` threads (whole
/// warps) take part: all of them where the spans and lanes fill the block,
/// fewer for head_dims such as 96, whose spans do not divide it.
struct ValuePassShape {
  int64_t spanChannels, tokenLanes, spansPerThread, activeThreads;
};

/// The widest such division of `headDim` channels over `blockThreads`
/// threads for `queryHeadsPerKVHead` query heads, or nullopt (head_dims
/// that are not a multiple of 32 or that no whole warps divide).
std::optional<ValuePassShape> valuePassShape(int64_t headDim,
                                             int64_t blockThreads,
                                             int64_t queryHeadsPerKVHead);

/// What one split kernel is specialized to: one attention site and one run
/// of KV heads with the same encoding.
struct SplitKernelSpec {
  std::string name;
  ::kvc::numerics::CacheEncoding encoding;
  int64_t batch, queryHeads, kvHeads, headDim;
  unsigned pageTokens;
  uint64_t kPageBytes, vPageBytes; ///< whole pages (all heads' blocks)
  uint64_t kRunOffset, vRunOffset; ///< block of the run's first head
  uint64_t residualHeadBytes;
  unsigned splitTokens; ///< the most tokens of a split (shared scores)
  unsigned blockThreads;
  unsigned minBlocksPerSM; ///< nvvm.minctasm; 0: none
  CodeToFloat codeToFloat; ///< how codes become floats
  KeyProduct keyProduct = KeyProduct::FMA;
  ValueProduct valueProduct = ValueProduct::FMA;
  /// How those tensor-core passes read the codes whose scales they fold.
  FoldedCodes foldedCodes = FoldedCodes::Subnormal;
  /// The split's page blocks brought into L2 first (L2Prefetch.h), at
  /// most l2PrefetchBytes a side and at the kernel's start.
  L2Prefetch l2Prefetch = L2Prefetch::None;
  uint64_t l2PrefetchBytes = 49152;
  /// Shared-memory stages a warp of the tensor-core key (value) pass
  /// copies its next units into (Staging.h); 0: its loads read the pages.
  unsigned keyStages = 0, valueStages = 0;
  double scale;
  std::optional<double> softcap;
  std::optional<int64_t> window;
  Type queryElementType;
  /// The attention's mask operand, memref<B x (1 | Hq) x 1 x ?>, added to
  /// the scores before the softmax; null without one.
  MemRefType mask;
  /// CombineMode::Fused: the kernel merges the splits itself
  /// (emitFusedCombine) into an output of outElementType.
  CombineMode combine = CombineMode::Kernel;
  Type outElementType;
};

/// The split kernel. Grid (splits, KV heads of the run, batch), block
/// `blockThreads`. Arguments: (query memref<B x Hq x 1 x D>, K pool,
/// V pool, per-batch records (kvc_rt_gpu_sequence), workspace: all
/// !llvm.ptr; splits: index; ok: i32; first KV head of the run: index;
/// tokens per split: index, at most `splitTokens`; with CombineMode::Fused
/// also out memref<B x Hq x 1 x D> and the arrival counters: !llvm.ptr;
/// last, with a mask, the mask memref; a sequence with another token count
/// than the mask's gets NaN outputs).
/// Writes, per (batch, query head, split), the unnormalized output [D], the
/// maximum score and the sum of exp(score - maximum) into the workspace
/// (workspaceBytes); fused, the last block of a (batch, KV head) merges
/// them into `out`.
gpu::GPUFuncOp buildSplitKernel(OpBuilder &b, Location loc,
                                gpu::GPUModuleOp module,
                                const SplitKernelSpec &spec);

/// Byte offsets into the workspace: partial outputs f32 [B][Hq][splits][D],
/// then (maximum, sum) f32 pairs [B][Hq][splits].
Value workspaceBytes(OpBuilder &b, Location loc, int64_t batch,
                     int64_t queryHeads, int64_t headDim, Value splits);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOGPU_ATTENDKERNELS_H
