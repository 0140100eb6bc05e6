//===- Passes.td - kvc transformation passes ----------------*- tablegen -*-===//

#ifndef KVC_DIALECT_KVC_TRANSFORMS_PASSES_TD
#define KVC_DIALECT_KVC_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def KVCRaiseAttention : Pass<"kvc-raise-attention", "ModuleOp"> {
  let summary = "Raise attention over concatenated KV caches to kvc ops";
  let description = [{
    Finds scaled dot-product attention that reads a KV cache extended by
    `tensor.concat`, `tensor.insert_slice` or a dynamic-update-slice in
    linalg-on-tensors IR and rewrites it to `kvc.append` + `kvc.attend`,
    turning the function's past/present K/V tensors into `!kvc.cache`
    values. Attention that does not match stays unchanged, with a remark
    naming the part that failed.
  }];
  let dependentDialects = ["::mlir::kvc::KVCDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::linalg::LinalgDialect"];
}

def KVCDecoupleCompression : Pass<"kvc-decouple-compression", "ModuleOp"> {
  let summary = "Assign independent key and value encodings to every cache";
  let description = [{
    Gives every `!kvc.cache` in the module an encoding, chosen separately for
    keys and values. The spec is a comma-separated list:

    ```
    key=q2:channel:g32,value=q2:token:g32,residual=128
    ```

    where a side is `fp16` (uncompressed), `q<bits>:<channel|token>:g<group>`
    or `fp8:<e4m3|e5m2>`. The default is the decoupled KIVI-style policy:
    2-bit per-channel keys, 2-bit per-token values, groups of 32 and 128
    fp16 residual tokens. `layers` overrides parts of the spec for some
    layers: `layers=0-3:key=q4:channel:g32` (several overrides are separated
    by `;`). A cache's layer is its `kvc.layer` attribute, or else the
    position of its function argument among the function's caches.
    Caches that already have an encoding keep it unless `overwrite` is set.
  }];
  let options = [
    Option<"spec", "spec", "std::string",
           /*default=*/"\"key=q2:channel:g32,value=q2:token:g32,residual=128\"",
           "Encoding spec for every layer">,
    Option<"layers", "layers", "std::string", /*default=*/"\"\"",
           "Per-layer overrides, e.g. 0-3:key=q4:channel:g32;31:value=fp16">,
    Option<"storageType", "storage-type", "std::string", /*default=*/"\"f16\"",
           "Storage element type of compressed caches (f16, bf16 or f32)">,
    Option<"overwrite", "overwrite", "bool", /*default=*/"false",
           "Replace encodings that are already present">
  ];
  let dependentDialects = ["::mlir::kvc::KVCDialect"];
}

def KVCCacheReport : Pass<"kvc-cache-report", "ModuleOp"> {
  let summary = "Report each layer's K/V encodings and the KV memory they take";
  let description = [{
    Prints, for every cache in the module, its layer, its key and value
    encodings, the bytes per token each side takes (metadata and page
    padding included, per docs/layout.md), and the total KV bytes at
    `batch` sequences of `context` tokens against an uncompressed fp16 cache,
    with the saving. `format=json` prints the same as JSON for machines. The
    IR is not changed.
  }];
  let options = [
    Option<"format", "format", "std::string", /*default=*/"\"text\"",
           "Report format: text or json">,
    Option<"output", "output", "std::string", /*default=*/"\"-\"",
           "File to write the report to (- for stderr)">,
    Option<"batch", "batch", "int64_t", /*default=*/"0",
           "Sequences in the batch (0: the caches' static batch, else 1)">,
    Option<"context", "context", "int64_t", /*default=*/"4096",
           "Tokens per sequence">,
    Option<"pageTokens", "page-tokens", "unsigned", /*default=*/"64",
           "Tokens per runtime page">
  ];
}

#endif // KVC_DIALECT_KVC_TRANSFORMS_PASSES_TD
