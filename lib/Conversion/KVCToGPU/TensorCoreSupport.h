//===- TensorCoreSupport.h - Shared pieces of the mma.sync passes -*- C++ -*-===//
//
// Fragments, loop ranges and reads shared by the split kernel's tensor-core
// key pass (TensorCoreKeys.cpp) and value pass (TensorCoreValues.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOGPU_TENSORCORESUPPORT_H
#define KVC_LIB_CONVERSION_KVCTOGPU_TENSORCORESUPPORT_H

#include "AttendKernels.h"
#include "KernelBuilder.h"

namespace mlir {
namespace kvc {
namespace tensorcore {

/// Two f32 values as an fp16 pair (cvt.rn.f16x2.f32).
Value packHalfPair(KernelBuilder &k, Value x, Value y);
/// A constant vector of `type` (floats) filled with `value`.
Value splat(KernelBuilder &k, VectorType type, double value);
/// A constant vector of `type` filled with zeros.
Value zeros(KernelBuilder &k, VectorType type);
/// fp16 pairs as an mma fragment (vector<pairs x 2 x f16>).
Value fragment(KernelBuilder &k, ArrayRef<Value> pairs);
/// One fp16 pair as a one-register mma fragment (vector<1x2xf16>).
Value singleFragment(KernelBuilder &k, Value pair);
/// `thenBody` or `elseBody` applied to `accs` as `condition` holds, the
/// results merged.
SmallVector<Value>
eitherBranch(KernelBuilder &k, Value condition, ValueRange accs,
             function_ref<SmallVector<Value>(ValueRange)> thenBody,
             function_ref<SmallVector<Value>(ValueRange)> elseBody);
/// `body` applied to `accs` behind a branch on `condition`, which the
/// caller knows to hold (the else branch passes `accs` on): ptxas hoists no
/// global load above a branch, so the loads of `body` do not hold
/// registers during the products before it.
SmallVector<Value> behindBranch(KernelBuilder &k, Value condition,
                                ValueRange accs,
                                function_ref<SmallVector<Value>(ValueRange)> body);
/// How many blocks of `size` tokens from `base` (at most `start`) cover
/// the `count` tokens of the split [start, end): none when it is empty.
Value coveringBlocks(KernelBuilder &k, Value count, Value end, Value base,
                     int64_t size);
/// The `edge`-th block outside the interior range [inner, innerEnd).
Value edgeBlock(KernelBuilder &k, Value edge, Value inner, Value innerEnd);
/// Of the `blocks` blocks of `size` tokens from `base` that cover the split
/// [start, end), the range [inner, innerEnd) of those wholly in it and
/// below `compressed` (in pages).
std::pair<Value, Value> interiorRange(KernelBuilder &k, Value start, Value end,
                                      Value compressed, Value base,
                                      Value blocks, int64_t size);
/// `pairs` fp16 pairs from `read` when local token `local` is below
/// `count` (in the split), else zeros.
SmallVector<Value> readInSplit(KernelBuilder &k, Value local, Value count,
                               int64_t pairs,
                               function_ref<SmallVector<Value>()> read);
/// Channels `span` of local token `local` of the split as fp16 pairs,
/// zeros past `count` (TensorCoreSupport.cpp).
SmallVector<Value> readHalfPairs(KernelBuilder &k, const SequenceSideView &view,
                                 Value kvHead, Value start, Value local,
                                 Value count, ChannelSpan span,
                                 bool direct = false);

} // namespace tensorcore
} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOGPU_TENSORCORESUPPORT_H
