//===- KVCBase.td - kvc dialect definition -----------------*- tablegen -*-===//
//
// The kvc dialect: compressed KV caches as first-class values.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_DIALECT_KVC_IR_KVCBASE_TD
#define KVC_DIALECT_KVC_IR_KVCBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def KVC_Dialect : Dialect {
  let name = "kvc";
  let cppNamespace = "::mlir::kvc";
  let summary = "Decoupled KV-cache compression for LLM inference";
  let description = [{
    The `kvc` dialect represents the key/value cache of transformer attention
    as a value of type `!kvc.cache`, with the compression of its keys and its
    values described *independently* by a `#kvc.encoding` attribute (keys and
    values are statistically different: keys have outlier channels and
    quantize well per channel, values quantize well per token).

    Caches have value semantics, like tensors: `kvc.append` returns the
    extended cache and `kvc.attend` reads one. Passes reason functionally;
    the lowering makes updates in place on pages owned by the kvc runtime.
    An update (`kvc.append`, `kvc.evict`) consumes its cache operand; sharing
    a prefix between two continuations is made explicit with `kvc.fork`.

    The numerics of every encoding (quantizer, packed layout, residual rule,
    reference attention) are defined once, in the kvc numerics library, and
    documented in `docs/layout.md`.
  }];
  let useDefaultAttributePrinterParser = 1;
  let useDefaultTypePrinterParser = 1;
  let hasConstantMaterializer = 1;
  // Verifies the discardable `kvc.*` attributes that carry meaning
  // (kvc.head_encodings) on operations and on function arguments.
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let extraClassDeclaration = [{
    void registerAttributes();
    void registerTypes();

    /// Per-KV-head encodings of a cache (from kvc-select-bitwidths
    /// granularity=head): an array of one `#kvc.encoding` per KV head, on
    /// the function argument or the operation that introduces the cache.
    static constexpr ::llvm::StringLiteral getHeadEncodingsAttrName() {
      return ::llvm::StringLiteral("kvc.head_encodings");
    }
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
}

class KVC_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<KVC_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

class KVC_Type<string name, string typeMnemonic, list<Trait> traits = []>
    : TypeDef<KVC_Dialect, name, traits> {
  let mnemonic = typeMnemonic;
}

class KVC_Op<string mnemonic, list<Trait> traits = []>
    : Op<KVC_Dialect, mnemonic, traits>;

#endif // KVC_DIALECT_KVC_IR_KVCBASE_TD
