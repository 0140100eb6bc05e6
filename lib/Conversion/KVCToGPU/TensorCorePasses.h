//===- TensorCorePasses.h - mma.sync passes of the split kernel -*- C++ -*-===//
//
// The split kernel's key and value passes on tensor cores
// (nvgpu.mma.sync m16n8k16, fp16 inputs, f32 accumulation): key-product=mma
// and value-product=mma of kvc-lower-to-gpu.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOGPU_TENSORCOREPASSES_H
#define KVC_LIB_CONVERSION_KVCTOGPU_TENSORCOREPASSES_H

#include "AttendKernels.h"
#include "KernelBuilder.h"

namespace mlir {
namespace kvc {

/// The factor the tensor-core key pass's query fragments carry for keys
/// read by `keys`: numerics::foldedKeyQueryScale (2^(bits - 4)) where it
/// folds the keys' scales into them (channel-axis token pairs), else 1.
/// Its dot products carry it too.
double tensorCoreQueryScale(const PageReader &keys);

/// The queries' B fragments of the tensor-core key pass into `fragments`
/// (workgroup memref<D/16 x 32 x 2 x vector<2xf16>>): the queries times
/// `queryScale` (a power of two), rounded to fp16.
void emitQueryFragments(KernelBuilder &k, const SplitKernelSpec &spec,
                        Value query, Value batch, Value firstQueryHead,
                        Value fragments, double queryScale);

/// The key pass on tensor cores: scores[j][local] = capScore(q_j . k *
/// tensorCoreQueryScale * scoreScale) for the split's tokens [start, start
/// + count) (scores in shared memory, [group][split]); the pass folds
/// scoreScale into the multiplications it does anyway. `keyStages`: the
/// workgroup memref of spec.keyStages > 0 (Staging.h; keys read in
/// token pairs), else null.
void emitTensorCoreScores(KernelBuilder &k, const SplitKernelSpec &spec,
                          const SequenceSideView &keys, Value kvHead,
                          Value start, Value count, Value queryFragments,
                          Value keyStages, Value scores, double scoreScale,
                          function_ref<Value(Value)> capScore);

/// The folded value pass's terms of token `token` of KV head `kvHead` (f32):
/// its scale and its zero; 1 and 0 for a residual row. `slab`: the value
/// pass's slab (D / 8).
std::pair<Value, Value> foldedValueTerms(KernelBuilder &k,
                                         const SequenceSideView &values,
                                         Value kvHead, Value token,
                                         int64_t slab);

/// The power of two the tensor-core value pass's weights (w, or w * scale
/// where it folds the values' scales) carry into their split
/// (packWeightHalves), and the pass divides its sums by: 2^b for folded
/// scales of b-bit values (w * scale * 2^b is about w times the token's
/// range; 2^6 more with mma-codes=normal), else 2^14 (w * 2^14 <= 2^14
/// stays finite). Either way the parts of all but the smallest weights are
/// fp16 normals, not subnormals, which lose bits (and which tensor cores
/// that flush subnormal inputs would drop).
double tensorCoreWeightScale(const SplitKernelSpec &spec);

/// A softmax weight w as the f32 bit pattern of the fp16 pair (hi, lo) =
/// (w cut to fp16, fp16(w - hi)), hi in the low 16 bits: the value pass's
/// split of w (about 21 bits), stored in w's slot.
Value packWeightHalves(KernelBuilder &k, Value weight);

/// The value pass on tensor cores: for every query head j of the group and
/// channel c, the sum over the split's tokens of weights[j][local] *
/// value[local][c], handed to `store(j, c, total)` (each pair once, by one
/// thread). `weights` is the shared [group][split] memref of the weights
/// exp(score - max) packed by packWeightHalves (where the pass folds the
/// values' scales, softmaxSumsValueZeros: of the weights times
/// foldedValueTerms' scale); `zeroSum(head)` the sum
/// of the weights times foldedValueTerms' zero of the query head (an
/// index), for the folded pass only; `partials` a shared f32 memref<warps x
/// group x D>. The value reader must unroll spans of D / 8 channels.
/// `valueStages`: the workgroup memref whose start holds spec.valueStages > 0
/// stages (Staging.h; token-axis 2-, 4- and 8-bit values), else null.
void emitTensorCoreValues(KernelBuilder &k, const SplitKernelSpec &spec,
                          const SequenceSideView &values, Value kvHead,
                          Value start, Value count, Value weights,
                          function_ref<Value(Value)> zeroSum, Value valueStages,
                          Value partials,
                          function_ref<void(Value, Value, Value)> store);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOGPU_TENSORCOREPASSES_H
