//===- KVCAttrs.td - kvc attributes and enums ---------------*- tablegen -*-===//

#ifndef KVC_DIALECT_KVC_IR_KVCATTRS_TD
#define KVC_DIALECT_KVC_IR_KVCATTRS_TD

include "kvc/Dialect/KVC/IR/KVCBase.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def KVC_QuantAxis : I32EnumAttr<"QuantAxis",
    "the axis along which one quantization group runs", [
      I32EnumAttrCase<"Channel", 0, "channel">,
      I32EnumAttrCase<"Token", 1, "token">
    ]> {
  let cppNamespace = "::mlir::kvc";
  let genSpecializedAttr = 0;
}

def KVC_FP8Format : I32EnumAttr<"FP8Format", "an 8-bit float format", [
      I32EnumAttrCase<"E4M3", 0, "e4m3">,
      I32EnumAttrCase<"E5M2", 1, "e5m2">
    ]> {
  let cppNamespace = "::mlir::kvc";
  let genSpecializedAttr = 0;
}

def KVC_EvictPolicy : I32EnumAttr<"EvictPolicy",
    "how tokens outside the sink and the recent window are chosen", [
      I32EnumAttrCase<"Streaming", 0, "streaming">,
      I32EnumAttrCase<"H2O", 1, "h2o">,
      I32EnumAttrCase<"SnapKV", 2, "snapkv">
    ]> {
  let cppNamespace = "::mlir::kvc";
  let genSpecializedAttr = 0;
}

//===----------------------------------------------------------------------===//
// Side encodings: how the keys or the values of a cache are stored.
//===----------------------------------------------------------------------===//

def KVC_SideEncodingAttrInterface
    : AttrInterface<"SideEncodingAttrInterface"> {
  let cppNamespace = "::mlir::kvc";
  let description = [{
    An encoding of one side (keys or values) of a KV cache: how each element
    is stored. Implemented by `#kvc.plain`, `#kvc.quant` and `#kvc.fp8`.
  }];
  let methods = [
    InterfaceMethod<
      "Checks the encoding against the head dimension of the cache it is "
      "used in; `side` is \"key\" or \"value\" and names it in messages.",
      "::llvm::LogicalResult", "verifyForHeadDim",
      (ins "int64_t":$headDim, "::llvm::StringRef":$side,
           "::llvm::function_ref<::mlir::InFlightDiagnostic()>":$emitError)>,
    InterfaceMethod<
      "Returns this encoding in the numerics library's terms, the single "
      "definition of what it means.",
      "::kvc::numerics::SideEncoding", "toNumerics">
  ];
}

def KVC_PlainAttr : KVC_Attr<"Plain", "plain",
    [DeclareAttrInterfaceMethods<KVC_SideEncodingAttrInterface>]> {
  let summary = "uncompressed: elements stay in the cache's storage type";
  let description = [{
    Example: `#kvc.plain`
  }];
}

def KVC_QuantAttr : KVC_Attr<"Quant", "quant",
    [DeclareAttrInterfaceMethods<KVC_SideEncodingAttrInterface>]> {
  let summary = "asymmetric uniform integer quantization with fp16 scale/zero";
  let description = [{
    Groups of `group` elements share an fp16 scale and zero point:
    `scale = (max - min) / (2^bits - 1)`, `zero = min`, codes rounded half to
    even and clamped to `[0, 2^bits - 1]`. With `axis = channel` a group is
    `group` consecutive tokens of one channel (the KIVI key scheme); with
    `axis = token` a group is `group` consecutive channels of one token (the
    value scheme). Codes are packed in 32-code units (docs/layout.md), so
    `group` must be a multiple of 32.

    Example: `#kvc.quant<bits = 2, axis = channel, group = 32>`
  }];
  let parameters = (ins "unsigned":$bits,
                        EnumParameter<KVC_QuantAxis>:$axis,
                        "unsigned":$group);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def KVC_FP8Attr : KVC_Attr<"FP8", "fp8",
    [DeclareAttrInterfaceMethods<KVC_SideEncodingAttrInterface>]> {
  let summary = "8-bit float storage with a per-token fp16 scale";
  let description = [{
    Each token's elements are divided by an fp16 scale
    (`max |x| / max finite of the format`) and rounded to the 8-bit float
    format with saturation. `e4m3` is the OCP E4M3FN format (no infinities).

    Example: `#kvc.fp8<e4m3>`
  }];
  let parameters = (ins EnumParameter<KVC_FP8Format>:$format);
  let assemblyFormat = "`<` $format `>`";
}

//===----------------------------------------------------------------------===//
// Reductions applied before element encoding.
//===----------------------------------------------------------------------===//

def KVC_PruneAttr : KVC_Attr<"Prune", "prune"> {
  let summary = "key channel pruning: keep the `keep` most important channels";
  let description = [{
    Query-driven key channel pruning (ThinK): only `keep` of the head_dim
    key channels are stored. Allowed on keys only, since values are consumed
    per token by the weighted sum and have no channels that can be dropped
    without changing the output.

    Example: `#kvc.prune<keep = 48>`
  }];
  let parameters = (ins "unsigned":$keep);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def KVC_LowRankAttr : KVC_Attr<"LowRank", "lowrank"> {
  let summary = "low-rank projection of each head to `rank` dimensions";
  let description = [{
    Example: `#kvc.lowrank<rank = 32>`
  }];
  let parameters = (ins "unsigned":$rank);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

//===----------------------------------------------------------------------===//
// Eviction
//===----------------------------------------------------------------------===//

def KVC_EvictAttr : KVC_Attr<"Evict", "evict"> {
  let summary = "token eviction: keep at most `budget` tokens per head";
  let description = [{
    Keeps the first `sink` tokens and the `window` most recent tokens; the
    remaining `budget - sink - window` slots go to the highest-scoring middle
    tokens (accumulated attention mass for `h2o`, observation-window scores at
    prefill for `snapkv`). `streaming` (StreamingLLM) keeps only the sink and
    the window, so its budget must equal `sink + window`.

    `head_budgets` (optional, `h2o` and `snapkv`) gives every KV head its own
    budget; `budget` is then the largest of them. Each head keeps its own
    live tokens either way; the budgets differ when some heads attend to a
    few tokens and others spread their attention.

    `demote_key` and `demote_value` (optional, together) make the eviction
    two-tier: an evicted token is not dropped but kept at these cheaper
    encodings, each token re-encoded alone from the row readers saw (so
    fp16, fp8 or token-axis quantization; docs/layout.md 5.2), and attention
    keeps attending to it.

    Examples: `#kvc.evict<policy = h2o, sink = 4, window = 256, budget = 1024>`,
    `#kvc.evict<policy = h2o, sink = 4, window = 64, budget = 512,
    head_budgets = [512, 128]>`, `#kvc.evict<policy = h2o, sink = 4,
    window = 64, budget = 256, demote_key = #kvc.quant<bits = 2, axis =
    token, group = 32>, demote_value = #kvc.quant<bits = 2, axis = token,
    group = 32>>`
  }];
  let parameters = (ins EnumParameter<KVC_EvictPolicy>:$policy,
                        "unsigned":$sink,
                        "unsigned":$window,
                        "unsigned":$budget,
                        OptionalParameter<"::mlir::DenseI64ArrayAttr">:$head_budgets,
                        OptionalParameter<"::mlir::kvc::SideEncodingAttrInterface">:$demote_key,
                        OptionalParameter<"::mlir::kvc::SideEncodingAttrInterface">:$demote_value);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The policy in the numerics library's terms (kvc/Numerics/Evict.h),
    /// the single definition of which tokens it keeps.
    ::kvc::numerics::EvictPolicy toNumerics() const;
    /// Two-tier eviction: the encodings evicted tokens are kept at
    /// (residual 0), or none when evicted tokens are dropped.
    std::optional<::kvc::numerics::CacheEncoding> getDemoteNumerics() const;
  }];
}

//===----------------------------------------------------------------------===//
// Whole-cache encoding
//===----------------------------------------------------------------------===//

def KVC_EncodingAttr : KVC_Attr<"Encoding", "encoding"> {
  let summary = "how one cache stores its keys and its values, independently";
  let description = [{
    `key` and `value` are side encodings (`#kvc.plain`, `#kvc.quant`,
    `#kvc.fp8`), chosen independently: that is the decoupling. `residual` is
    the fp16 residual window R: with n tokens stored, the first
    floor(n / R) * R are compressed and the rest stay fp16 (R = 0: every
    token is compressed as it is written, which channel-axis quantization
    cannot do since its groups run along tokens). Optional reductions apply
    before the element encoding (`key_reduce` may prune or project keys,
    `value_reduce` may project values), and `evict` bounds the number of
    tokens kept.

    Example:
    ```mlir
    #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                  value = #kvc.quant<bits = 2, axis = token, group = 32>,
                  residual = 128>
    ```
  }];
  let parameters = (ins "::mlir::kvc::SideEncodingAttrInterface":$key,
                        "::mlir::kvc::SideEncodingAttrInterface":$value,
                        "unsigned":$residual,
                        OptionalParameter<"::mlir::Attribute">:$key_reduce,
                        OptionalParameter<"::mlir::Attribute">:$value_reduce,
                        OptionalParameter<"::mlir::Attribute">:$evict);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Checks the parts of the encoding that depend on the cache's head
    /// dimension (token-axis groups, pruning and rank bounds).
    ::llvm::LogicalResult verifyForHeadDim(
        int64_t headDim,
        ::llvm::function_ref<::mlir::InFlightDiagnostic()> emitError) const;
    /// The eviction policy, if any (verified to be a #kvc.evict).
    ::mlir::kvc::EvictAttr getEvictPolicy() const {
      return ::llvm::dyn_cast_if_present<::mlir::kvc::EvictAttr>(getEvict());
    }
    /// The encoding in the numerics library's terms.
    ::kvc::numerics::CacheEncoding toNumerics() const;
  }];
}

#endif // KVC_DIALECT_KVC_IR_KVCATTRS_TD
