//===- Lowering.h - shared pieces of the kvc CPU lowering -------*- C++ -*-===//

#ifndef KVC_LIB_CONVERSION_KVCTOLOOPS_LOWERING_H
#define KVC_LIB_CONVERSION_KVCTOLOOPS_LOWERING_H

#include "kvc/Dialect/KVC/IR/KVCOps.h"
#include "kvc/Numerics/Encoding.h"
#include "kvc/Numerics/Layout.h"
#include "llvm/ADT/DenseMap.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir {
namespace kvc {

/// One KV head's encoding and where its blocks sit in a page.
struct HeadPageLayout {
  ::kvc::numerics::CacheEncoding encoding;
  ::kvc::numerics::BlockLayout k, v;
  uint64_t kOffset = 0, vOffset = 0; ///< of its blocks within a page
};

/// The pages of a cache whose KV heads may have different encodings
/// (docs/layout.md, per-head encodings): head h's block follows those of
/// heads 0..h-1, in the K and the V page separately.
struct CachePageLayout {
  SmallVector<HeadPageLayout> heads;
  uint64_t kPageBytes = 0, vPageBytes = 0;

  CachePageLayout(ArrayRef<::kvc::numerics::CacheEncoding> encodings,
                  unsigned headDim, unsigned pageTokens);
};

struct LoweringContext;

/// i1: whether the runtime holds exactly the layout compiled here, through
/// `checkLayoutFn` (the page sizes, residual window and shape: the CPU or
/// the GPU entry point), then kCheckHead for every head's encodings and
/// block offsets. A mismatch is recorded in the binding.
Value emitLayoutCheck(OpBuilder &b, Location loc, const LoweringContext &ctx,
                      StringRef checkLayoutFn, Value binding,
                      const CachePageLayout &pages, unsigned residual,
                      int64_t kvHeads, int64_t headDim);

/// Consecutive KV heads [first, last) with one encoding: they share their
/// generated code.
struct HeadRunRange {
  unsigned first, last;
};
SmallVector<HeadRunRange> getHeadRuns(const CachePageLayout &pages);

/// What the code writing a reserved kvc.append gets: the cache's pages,
/// the tokens as read-only buffers, the batch's records
/// (kvc_rt_gpu_append) and the K and V pools (!llvm.ptr).
struct ReservedAppend {
  const CachePageLayout &pages;
  uint64_t residualHeadBytes;
  int64_t headDim;
  Value keys, values;
  Value records, kPool, vPool;
};

/// The host side of a kvc.append whose tokens generated code writes: the
/// layout check (emitLayoutCheck with `checkLayoutFn`), then
/// kvc_rt_mlir_reserve_append of the op's token count; `body` is emitted
/// where both succeeded. Otherwise nothing is written and the binding holds
/// the error.
void emitReservedAppend(OpBuilder &b, AppendOp op, const LoweringContext &ctx,
                        StringRef checkLayoutFn, Value binding,
                        function_ref<void(const ReservedAppend &)> body);

/// Generated code updates caches in place: an error at the first op that
/// reads the cache `update` (a kvc.append or kvc.evict) consumed.
LogicalResult checkNotReadAfterUpdate(Operation *update, StringRef passName);

/// What the patterns of the CPU lowering share.
struct LoweringContext {
  unsigned pageTokens;
  /// The encoding of every KV head of each kvc.attend's cache, found by the
  /// pass before the conversion changes the IR (getKVHeadEncodings).
  llvm::DenseMap<Operation *, SmallVector<::kvc::numerics::CacheEncoding>>
      headEncodings;
  /// Declares (once) and returns the runtime function `name`.
  func::FuncOp getOrDeclare(OpBuilder &b, StringRef name, TypeRange inputs,
                            TypeRange results, bool cInterface) const;
  /// Calls runtime function `name` (declared on first use, without the C
  /// interface) and returns its result, if any.
  Value call(OpBuilder &b, Location loc, StringRef name, TypeRange results,
             ValueRange args) const;
  /// The memref<256xf32> table decoding fp8 codes of `side`'s format
  /// (getOrCreateFP8Table in the module), or null when the side is not fp8.
  Value getFP8Table(OpBuilder &b, Location loc,
                    const ::kvc::numerics::SideEncoding &side) const;
  mutable ModuleOp module;
  /// key-reads=parts: attention reads each key row in 16-channel parts
  /// (channel-axis 2/4/8-bit keys in token pairs) and multiplies
  /// fp16-rounded queries and keys, as the GPU's tensor-core key pass does
  /// (kvc-lower-to-gpu key-product=mma).
  bool keyReadsInParts = false;
  /// value-reads=f16: attention rounds each dequantized value to fp16
  /// before its weighted sum, as the GPU's tensor-core value pass does
  /// (kvc-lower-to-gpu value-product=mma).
  bool valuesInHalf = false;
};

/// `x` (f32) rounded to fp16 and back to f32: the runtime stores tokens as
/// fp16, and the tensor-core key pass multiplies fp16 values.
Value roundToHalf(OpBuilder &b, Location loc, Value x);

/// The memref<256xf32> table decoding the fp8 codes of `side` (from the
/// numerics library's decoder), as a memref.get_global at the builder's
/// point of a constant global created on first use in `symbolTable` (a
/// builtin.module or a gpu.module); null when the side is not fp8.
Value getOrCreateFP8Table(OpBuilder &b, Location loc, Operation *symbolTable,
                          const ::kvc::numerics::SideEncoding &side);

/// The encoding of every KV head of `cache`, which `op` reads or appends to
/// (plain fp16 when the cache has no encoding), or an error at `op` naming
/// `passName` when an
/// encoding cannot be lowered (reductions, eviction unless `allowEviction`,
/// a group that does not fit `pageTokens`-token pages).
FailureOr<SmallVector<::kvc::numerics::CacheEncoding>>
getLowerableHeadEncodings(Operation *op, TypedValue<CacheType> cache,
                          unsigned pageTokens, StringRef passName,
                          bool allowEviction = false);

/// `!kvc.cache` -> `!llvm.ptr` (a runtime binding), everything else kept.
void addCacheToBindingConversion(TypeConverter &converter);

/// Applies `patterns` (the kvc ops' lowerings) and the conversion of
/// function signatures, returns and calls; every kvc op must go.
LogicalResult applyBindingConversion(ModuleOp module,
                                     const TypeConverter &converter,
                                     RewritePatternSet &&patterns);

/// Drops `kvc.head_encodings` once the code that reads caches is generated.
void removeHeadEncodings(ModuleOp module);

/// Adds the pattern lowering kvc.attend to loops over packed pages.
void populateAttendToLoopsPattern(RewritePatternSet &patterns,
                                  const TypeConverter &converter,
                                  const LoweringContext &context);

/// kvc.quantize's operand as a read-only buffer, and new buffers for its
/// results; the CPU loops and the GPU kernel's launch fill them alike.
struct QuantizeBuffers {
  Value input, codes, scales, zeros;

  QuantizeBuffers(OpBuilder &b, QuantizeOp op);
  /// Replaces `op` by tensors of the result buffers.
  void replace(ConversionPatternRewriter &rewriter, QuantizeOp op) const;
};

/// Adds the pattern lowering kvc.append to a reservation in the runtime
/// (kvc_rt_mlir_reserve_append) and loops that write the tokens
/// (AppendWriter), for kvc-lower-to-loops' append=generated.
void populateAppendToLoopsPattern(RewritePatternSet &patterns,
                                  const TypeConverter &converter,
                                  const LoweringContext &context);

/// Adds the pattern lowering kvc.quantize (quant encodings, static shapes)
/// to loops that quantize and pack its groups.
void populateQuantizeToLoopsPattern(RewritePatternSet &patterns,
                                    const TypeConverter &converter);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOLOOPS_LOWERING_H
