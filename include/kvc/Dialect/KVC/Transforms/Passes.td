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

    A JAX dynamic-update-slice writes at the position wrapped
    (`pos < 0 ? pos + T : pos`) and clamped to `[0, T - S]` for a buffer of
    T slots and S new tokens, while its mask compares with `pos`: the two
    are taken as equal, which holds for `0 <= pos <= T - S`. A remark on
    each such site states this assumption.
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

def KVCRotateKeys : Pass<"kvc-rotate-keys", "ModuleOp"> {
  let summary = "Store compressed keys rotated by a Hadamard matrix";
  let description = [{
    For every cache whose keys are compressed (quantized or fp8), each
    `kvc.append` stores K·H and each `kvc.attend` reads with q·H, where H is
    the orthonormal Sylvester-Hadamard matrix of the head dimension
    (kvc/Numerics/Rotation.h). H·H = I, so the scores are unchanged, while
    the quantizer sees keys whose outlier channels are spread over all
    channels (QuaRot). On the tiny LM this cuts KIVI-2's loss increase by a
    third at the same bits (benchmarks/results/accuracy.md).

    The head dimension must be a power of two and the operands f32; other
    kvc ops that read such a cache (dequantize, evict) are an error, since
    they would see rotated keys. Rotated ops get a `kvc.rotated_keys`
    attribute, so running the pass twice rotates once.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
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

def KVCSelectBitwidths : Pass<"kvc-select-bitwidths", "ModuleOp"> {
  let summary = "Choose each cache's key and value encodings under a memory "
                "budget with the cost model";
  let description = [{
    For every cache (layer; with `granularity=head` every KV head of it) and
    for keys and values separately, considers the candidate encodings: 2, 3,
    4 and 8-bit quantization per channel or per token with groups of 32, 64
    or 128 (where the head dimension, the residual window and the runtime
    page size allow), fp16,
    fp8 e4m3/e5m2, and with `prune` key channel pruning. Each candidate has a
    cost in bits per element (metadata included) and a predicted loss:
    with `stats`, a calibration statistics file (docs/cost-model.md), the
    candidate is applied to the layer's calibration keys or values and the
    relative error E of teacher-forced attention is measured; calibration
    entries in the file scale E into a loss increase. Without `stats`, an
    analytic proxy from bits, group size and axis is used. A multiple-choice
    knapsack picks one candidate per slot minimising the total predicted
    loss with the average bits per element (residual window excluded) at
    most `budget`. The chosen encodings are written into the cache types
    (`granularity=head`: the per-head encodings go into a `kvc.head_encodings`
    attribute of the cache, and the type gets, per side, the head encoding
    with the most bits) and a report is printed.

    With `context` (and `stats`), each layer may also keep only a token
    budget b = fraction * context (`evict-fractions`; 1 keeps every token)
    under an H2O policy (sink 4, recent window R): its K and V cost scales by
    b / context, and its predicted error adds the eviction error measured by
    running the policy over the calibration tokens. The choice goes into the
    encoding's `evict` parameter (`#kvc.evict<policy = h2o, ...>`). With
    `granularity=head` every KV head chooses its own budget with its K and V
    encodings; heads that differ give the layer's policy `head_budgets`
    (a head that keeps every token keeps `context`; `budget` is the
    largest). Existing `kvc.evict` ops then apply the chosen policy (a
    two-tier demotion is kept) and are removed where the layer keeps every
    token; one without scores cannot apply an H2O budget (an error).
  }];
  let options = [
    Option<"budget", "budget", "double", /*default=*/"0.0",
           "Average bits per K/V element, metadata included (required)">,
    Option<"stats", "stats", "std::string", /*default=*/"\"\"",
           "Calibration statistics file (safetensors); empty: analytic "
           "proxy">,
    Option<"granularity", "granularity", "std::string",
           /*default=*/"\"layer\"",
           "One encoding per layer and side (layer) or per KV head (head)">,
    Option<"residual", "residual", "int64_t", /*default=*/"-1",
           "fp16 residual window R (-1: the cache's encoding, else 128)">,
    Option<"prune", "prune", "bool", /*default=*/"false",
           "Also consider key channel pruning (needs stats)">,
    Option<"pageTokens", "page-tokens", "unsigned", /*default=*/"64",
           "Tokens per runtime page: channel-axis groups must divide it">,
    Option<"threads", "threads", "unsigned", /*default=*/"0",
           "Threads measuring errors (0: all cores)">,
    Option<"report", "report", "std::string", /*default=*/"\"text\"",
           "Report format: text, json or none">,
    Option<"reportFile", "report-file", "std::string", /*default=*/"\"-\"",
           "File for the report (- for stderr)">,
    Option<"context", "context", "int64_t", /*default=*/"0",
           "Context length (tokens) token budgets are planned for; 0: no "
           "eviction candidates">,
    ListOption<"evictFractions", "evict-fractions", "double",
           "Token budgets as fractions of the context, each in (0, 1] "
           "(1: keep every token; default 1,0.75,0.5,0.25)">
  ];
  let dependentDialects = ["::mlir::kvc::KVCDialect"];
}

#endif // KVC_DIALECT_KVC_TRANSFORMS_PASSES_TD
