//===- KVCTypes.td - kvc types ------------------------------*- tablegen -*-===//

#ifndef KVC_DIALECT_KVC_IR_KVCTYPES_TD
#define KVC_DIALECT_KVC_IR_KVCTYPES_TD

include "kvc/Dialect/KVC/IR/KVCAttrs.td"
include "mlir/IR/BuiltinTypeInterfaces.td"

def KVC_CacheType : KVC_Type<"Cache", "cache"> {
  let summary = "a KV cache of one attention layer";
  let description = [{
    `!kvc.cache<BxHxCxDxT[, #kvc.encoding<...>]>`: a cache for a batch of `B`
    sequences with `H` KV heads of dimension `D`, holding up to `C` tokens
    per sequence, in storage element type `T` (f16, bf16 or f32) for its
    uncompressed parts. `B` may be dynamic (`?`, sized by `kvc.cache.empty`);
    `C` may be dynamic, meaning the cache grows page by page without a fixed
    bound; `H` and `D` are static. Without an encoding the cache is
    uncompressed.

    Example:
    ```mlir
    !kvc.cache<1x8x?x128xf16, #kvc.encoding<
        key = #kvc.quant<bits = 2, axis = channel, group = 32>,
        value = #kvc.quant<bits = 2, axis = token, group = 32>,
        residual = 128>>
    ```
  }];
  let parameters = (ins ArrayRefParameter<"int64_t">:$shape,
                        "::mlir::Type":$elementType,
                        OptionalParameter<"::mlir::kvc::EncodingAttr">:$encoding);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let builders = [
    TypeBuilderWithInferredContext<(ins
        "::llvm::ArrayRef<int64_t>":$shape, "::mlir::Type":$elementType,
        CArg<"::mlir::kvc::EncodingAttr", "{}">:$encoding), [{
      return $_get(elementType.getContext(), shape, elementType, encoding);
    }]>
  ];
  let extraClassDeclaration = [{
    static constexpr unsigned kBatchDim = 0, kHeadsDim = 1, kCapacityDim = 2,
                              kHeadDimDim = 3;
    int64_t getBatch() const { return getShape()[kBatchDim]; }
    int64_t getNumKVHeads() const { return getShape()[kHeadsDim]; }
    int64_t getCapacity() const { return getShape()[kCapacityDim]; }
    int64_t getHeadDim() const { return getShape()[kHeadDimDim]; }
    bool hasDynamicBatch() const {
      return ::mlir::ShapedType::isDynamic(getBatch());
    }
    /// The same cache with another encoding (null: uncompressed).
    CacheType withEncoding(::mlir::kvc::EncodingAttr encoding) const {
      return CacheType::get(getContext(), getShape(), getElementType(),
                            encoding);
    }
  }];
}

#endif // KVC_DIALECT_KVC_IR_KVCTYPES_TD
