//===- KVCOps.td - kvc operations ---------------------------*- tablegen -*-===//

#ifndef KVC_DIALECT_KVC_IR_KVCOPS_TD
#define KVC_DIALECT_KVC_IR_KVCOPS_TD

include "kvc/Dialect/KVC/IR/KVCTypes.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

def KVC_Cache : Type<CPred<"::llvm::isa<::mlir::kvc::CacheType>($_self)">,
                     "KV cache", "::mlir::kvc::CacheType">;

def KVC_FloatTensor : RankedTensorOf<[F16, BF16, F32]>;

def KVC_CompressingEncoding : Attr<
    Or<[CPred<"::llvm::isa<::mlir::kvc::QuantAttr>($_self)">,
        CPred<"::llvm::isa<::mlir::kvc::FP8Attr>($_self)">]>,
    "#kvc.quant or #kvc.fp8 encoding"> {
  let storageType = "::mlir::kvc::SideEncodingAttrInterface";
  let returnType = "::mlir::kvc::SideEncodingAttrInterface";
  let convertFromStorage = "$_self";
}

//===----------------------------------------------------------------------===//
// Cache lifetime
//===----------------------------------------------------------------------===//

def KVC_CacheEmptyOp : KVC_Op<"cache.empty", [
    MemoryEffects<[MemAlloc<DefaultResource>]>]> {
  let summary = "a fresh, empty cache";
  let description = [{
    Creates a cache holding no tokens. A dynamic batch dimension takes its
    size from the operand. Lowers to a runtime allocation; it is not CSE'd,
    since two empty caches updated separately must not alias.

    ```mlir
    %c = kvc.cache.empty(%batch) : !kvc.cache<?x8x?x128xf16>
    ```
  }];
  let arguments = (ins Variadic<Index>:$dynamicSizes);
  let results = (outs KVC_Cache:$result);
  let assemblyFormat = "`(` $dynamicSizes `)` attr-dict `:` qualified(type($result))";
  let hasVerifier = 1;
}

def KVC_ForkOp : KVC_Op<"fork", [Pure,
    AllTypesMatch<["cache", "first", "second"]>]> {
  let summary = "share a cache's prefix between two continuations";
  let description = [{
    Returns two caches with the contents of `cache`. Each may be updated
    independently; the runtime shares the pages and copies on write. This is
    the only way to update one cache value twice.

    ```mlir
    %a, %b = kvc.fork %c : !kvc.cache<1x8x?x128xf16>
    ```
  }];
  let arguments = (ins KVC_Cache:$cache);
  let results = (outs KVC_Cache:$first, KVC_Cache:$second);
  let assemblyFormat = "$cache attr-dict `:` qualified(type($cache))";
  let hasCanonicalizer = 1;
}

//===----------------------------------------------------------------------===//
// Cache updates and reads
//===----------------------------------------------------------------------===//

def KVC_AppendOp : KVC_Op<"append", [Pure,
    AllTypesMatch<["cache", "result"]>]> {
  let summary = "append new keys and values to every sequence of a cache";
  let description = [{
    `keys` and `values` are `batch x kv_heads x new_tokens x head_dim`
    (BHSD). Returns the extended cache. Tokens are compressed as the
    encoding's residual rule says: once a residual window fills, it is
    quantized and packed into pages. The cache operand is consumed: updating
    it a second time needs `kvc.fork`.

    ```mlir
    %c1 = kvc.append %c0, %k, %v : !kvc.cache<1x8x?x128xf16>,
        tensor<1x8x1x128xf32>, tensor<1x8x1x128xf32>
    ```
  }];
  let arguments = (ins KVC_Cache:$cache, KVC_FloatTensor:$keys,
                       KVC_FloatTensor:$values);
  let results = (outs KVC_Cache:$result);
  let assemblyFormat = [{
    $cache `,` $keys `,` $values attr-dict `:` qualified(type($cache)) `,` type($keys)
    `,` type($values)
  }];
  let hasVerifier = 1;
  let hasFolder = 1;
}

def KVC_AttendOp : KVC_Op<"attend", [Pure]> {
  let summary = "scaled dot-product attention of queries over a cache";
  let description = [{
    `query` is `batch x q_heads x q_len x head_dim`; `q_heads` is a multiple
    of the cache's KV heads (grouped-query attention: query head `h` reads KV
    head `h / (q_heads / kv_heads)`). The queries are the last `q_len` tokens
    of the cache (decode: `q_len = 1`; chunked prefill: `q_len > 1`).

    - `scale` multiplies the scores (default `1 / sqrt(head_dim)`);
    - `softcap` maps a score `s` to `softcap * tanh(s / softcap)`;
    - `causal` masks keys after each query's position;
    - `window` keeps only the `window` most recent keys up to each query's
      position (sliding-window attention);
    - `mask`, optional, is added to the scores before the softmax:
      `batch x (1 | q_heads) x q_len x tokens`, where `tokens` is the number
      of tokens in the cache (padding masks, or any mask not expressed by
      `causal` and `window`).

    Tokens evicted by `kvc.evict` are invisible. With a second result type,
    the op also returns the attention mass of every cached token,
    `batch x kv_heads x ?` f32: its softmax probability summed over the
    query heads of its KV head and over the `q_len` queries (what H2O
    accumulates and SnapKV ranks by, from the same pass over the cache). The
    token dimension is the longest sequence's length; tokens a sequence does
    not have, evicted tokens and masked tokens have mass 0.

    ```mlir
    %o = kvc.attend %q, %c {causal, window = 4096 : i64}
        : tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf16>
        -> tensor<1x32x1x128xf32>
    %o2, %mass = kvc.attend %q, %c {causal}
        : tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf16>
        -> tensor<1x32x1x128xf32>, tensor<1x8x?xf32>
    ```
  }];
  let arguments = (ins KVC_FloatTensor:$query, KVC_Cache:$cache,
                       Optional<KVC_FloatTensor>:$mask,
                       OptionalAttr<F32Attr>:$scale,
                       UnitAttr:$causal,
                       OptionalAttr<I64Attr>:$window,
                       OptionalAttr<F32Attr>:$softcap);
  let results = (outs KVC_FloatTensor:$result,
                      Optional<RankedTensorOf<[F32]>>:$mass);
  let assemblyFormat = [{
    $query `,` $cache (`mask` `(` $mask^ `:` type($mask) `)`)? attr-dict `:`
    type($query) `,` qualified(type($cache)) `->` type($result)
    (`,` type($mass)^)?
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The score scale: the `scale` attribute or 1/sqrt(head_dim).
    double getEffectiveScale();
  }];
}

def KVC_EvictOp : KVC_Op<"evict", [Pure,
    AllTypesMatch<["cache", "result"]>]> {
  let summary = "drop tokens from a cache according to an eviction policy";
  let description = [{
    Keeps at most `policy.budget` tokens of every sequence and KV head: the
    sink, the recent window and, for score-based policies, the middle tokens
    with the highest `scores` (`batch x kv_heads x tokens`, e.g. accumulated
    attention mass). Consumes its cache operand.

    ```mlir
    %c1 = kvc.evict %c0 scores(%s : tensor<1x8x?xf32>)
        with <policy = h2o, sink = 4, window = 256, budget = 1024>
        : !kvc.cache<1x8x?x128xf16>
    ```
  }];
  let arguments = (ins KVC_Cache:$cache,
                       Optional<RankedTensorOf<[F32]>>:$scores,
                       KVC_EvictAttr:$policy);
  let results = (outs KVC_Cache:$result);
  let assemblyFormat = [{
    $cache (`scores` `(` $scores^ `:` type($scores) `)`)? `with` $policy
    attr-dict `:` qualified(type($cache))
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Tensor-level quantization
//===----------------------------------------------------------------------===//

def KVC_QuantizeOp : KVC_Op<"quantize", [Pure]> {
  let summary = "quantize and pack a tensor of tokens";
  let description = [{
    `input` is `... x tokens x channels`; leading dimensions are independent
    matrices. The results use the packed layout of docs/layout.md:

    | encoding | codes (i8) | scales, zeros (f16) |
    |---|---|---|
    | `quant`, `axis = token`, group G | `... x T x (D*bits/8)` | `... x T x (D/G)` |
    | `quant`, `axis = channel`, group G | `... x (T/G) x D x (G*bits/8)` | `... x (T/G) x D` |
    | `fp8` | `... x T x D` | scales `... x T`, no zeros |

    Neither `dequantize(quantize(x))` nor `quantize(dequantize(p))` is an
    identity; a quantize of a constant folds, computed by the numerics
    library.

    ```mlir
    %codes, %scales, %zeros = kvc.quantize %x
        as quant<bits = 2, axis = token, group = 32>
        : tensor<4x64xf32> -> tensor<4x16xi8>, tensor<4x2xf16>, tensor<4x2xf16>
    ```
  }];
  let arguments = (ins KVC_FloatTensor:$input,
                       KVC_CompressingEncoding:$encoding);
  let results = (outs RankedTensorOf<[I8]>:$codes,
                      RankedTensorOf<[F16]>:$scales,
                      Optional<RankedTensorOf<[F16]>>:$zeros);
  let assemblyFormat = [{
    $input `as` custom<SideEncoding>($encoding) attr-dict `:` type($input) `->` type($codes) `,`
    type($scales) (`,` type($zeros)^)?
  }];
  let hasVerifier = 1;
  let hasFolder = 1;
}

def KVC_DequantizeOp : KVC_Op<"dequantize", [Pure]> {
  let summary = "unpack and dequantize a packed tensor of tokens";
  let description = [{
    The inverse mapping of `kvc.quantize` (same shapes): every code becomes
    `code * scale + zero` (`fp8`: `fp8(code) * scale`). A dequantize of
    constants folds.

    ```mlir
    %x = kvc.dequantize %codes, %scales, %zeros
        as quant<bits = 2, axis = token, group = 32>
        : tensor<4x16xi8>, tensor<4x2xf16>, tensor<4x2xf16> -> tensor<4x64xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[I8]>:$codes,
                       RankedTensorOf<[F16]>:$scales,
                       Optional<RankedTensorOf<[F16]>>:$zeros,
                       KVC_CompressingEncoding:$encoding);
  let results = (outs KVC_FloatTensor:$result);
  let assemblyFormat = [{
    $codes `,` $scales (`,` $zeros^)? `as` custom<SideEncoding>($encoding)
    attr-dict `:`
    type($codes) `,` type($scales) (`,` type($zeros)^)? `->` type($result)
  }];
  let hasVerifier = 1;
  let hasFolder = 1;
}

#endif // KVC_DIALECT_KVC_IR_KVCOPS_TD
