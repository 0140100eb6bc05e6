//===- Passes.td - kvc conversion passes --------------------*- tablegen -*-===//

#ifndef KVC_CONVERSION_PASSES_TD
#define KVC_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def KVCLowerToLoops : Pass<"kvc-lower-to-loops", "ModuleOp"> {
  let summary = "Lower kvc caches to runtime calls and kvc.attend to loops";
  let description = [{
    The CPU lowering. `!kvc.cache` values become `!llvm.ptr` handles to a
    runtime binding (`kvc_rt_binding`, runtime/include/kvc_runtime.h: one
    layer of a runtime cache and the sequences of a batch). `kvc.append`
    becomes a call that appends in place (compressing through the numerics
    library when a residual block flushes); `kvc.attend` becomes loops that
    read the packed pages of docs/layout.md directly and dequantize in
    registers, with the fp16 residual tail in the same loops. The page size
    must match the runtime's: the generated code checks it (and the block
    sizes) once per attention and poisons the output with NaN, and records an
    error in the binding, on a mismatch.

    With `append=generated`, `kvc.append` instead becomes a reservation in
    the runtime (`kvc_rt_mlir_reserve_append`: checks, pages and counts)
    and loops that quantize, pack and stage the tokens themselves, with the
    emitter of the GPU append kernel (every side encoding); the pages and
    residual rows are the runtime's byte for byte (`kvc-run
    --append=generated` checks it).

    `kvc.evict` becomes a runtime call. `kvc.quantize` with static shapes
    becomes loops that quantize and pack each group (fp8: each token)
    exactly as the numerics library does (bit for bit, checked by
    test/Integration/quantize-loops.mlir), built from arith/scf ops a GPU
    kernel can use as well.

    Ops the CPU path does not lower yet (`kvc.fork`, `kvc.cache.empty`,
    `kvc.dequantize`, `kvc.quantize` with dynamic shapes) are a
    compile-time error, never a silent fallback.
  }];
  let options = [
    Option<"pageTokens", "page-tokens", "unsigned", /*default=*/"64",
           "Tokens per runtime page (must match the runtime cache)">,
    Option<"append", "append", "std::string", /*default=*/"\"runtime\"",
           "Who writes appended tokens: `runtime` (a kvc_rt_mlir_append "
           "call) or `generated` (a reservation, then generated loops)">,
    Option<"keyReads", "key-reads", "std::string", /*default=*/"\"rows\"",
           "How attention reads a key: `rows` (the whole row, chunk after "
           "chunk) or `parts` (as the GPU's tensor-core key pass: 16-channel "
           "parts, each read on its own, channel-axis 2/4/8-bit keys through "
           "that pass's fp16 token pairs of their 32-token unit, and the "
           "query and key rounded to fp16 before their f32 product, so that "
           "tests check those reads and that rounding; head_dim a multiple "
           "of 16)">,
    Option<"valueReads", "value-reads", "std::string", /*default=*/"\"f32\"",
           "How attention takes a dequantized value: `f32` (as read) or "
           "`f16` (rounded to fp16 before its weighted sum, as the GPU's "
           "tensor-core value pass multiplies it, so that tests check that "
           "rounding)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::bufferization::BufferizationDialect",
    "::mlir::func::FuncDialect", "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect", "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect", "::mlir::tensor::TensorDialect"
  ];
}

def KVCExpandHalfFMA : Pass<"kvc-expand-half-fma", "ModuleOp"> {
  let summary = "Expand fp16 `llvm.intr.fma` into exactly rounded f32 code "
                "for CPUs without fp16 arithmetic";
  let description = [{
    kvc-cpu-pipeline runs this last. The CPU loops that mirror the GPU's
    tensor-core passes (`key-reads=parts`, `value-reads=f16`) dequantize
    with `llvm.intr.fma` on fp16 pairs, as the kernels do with
    `fma.rn.f16x2`. An x86 CPU without AVX512-FP16 has no fp16 fma: LLVM
    computes it in f64 and rounds the result to fp16 with a library call
    (`__truncdfhf2`), about 70 % of those loops' time.

    Each fp16 (or vector of fp16) `llvm.intr.fma` becomes: its operands
    extended to f32, the product (exact: 22 significant bits), the sum with
    its exact error (Knuth's TwoSum), the sum rounded to odd (an inexact
    sum with an even significand moves one ulp towards the exact value),
    and one `llvm.fptrunc` to fp16. Rounding to odd with 24 ≥ 11 + 2 bits
    and then to nearest gives the correctly rounded fp16 fma, subnormals,
    infinities and NaNs included, so the result is the one `fma.rn.f16x2`
    computes, bit for bit. With F16C (`llc -mattr=+f16c`) the extensions
    and the truncation are single instructions; without it they are the
    cheaper f32 library calls. Other fma types are left alone.
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def KVCLowerToGPU : Pass<"kvc-lower-to-gpu", "ModuleOp"> {
  let summary = "Lower kvc.attend to generated GPU kernels launched on "
                "runtime pages";
  let description = [{
    The GPU lowering of decode attention. For every `kvc.attend` with one
    query token, the pass generates kernels into a `gpu.module` and replaces
    the attention by host code that launches them with `gpu.launch_func`:

    - a split-K (flash-decoding) kernel, grid (splits, KV heads, batch): each
      block takes a split of one sequence and one KV head (`split-tokens`
      tokens; with `split-blocks`, fewer where the grid would have under that
      many blocks), and
      processes the GQA query heads of that head together, so each
      compressed byte is read once. Keys and values are dequantized in
      registers straight from the packed pages of docs/layout.md (the same
      element reader as the CPU loops, so one definition of the numerics),
      the fp16 residual tail in the same kernel; it writes unnormalized
      partial outputs with their maximum and sum;
    - a combine kernel, grid (query heads, batch), that merges the splits
      with a log-sum-exp (with `combine=fused`, the split kernel's last
      block of each sequence and KV head merges them instead).

    Caches become `!llvm.ptr` runtime bindings as in `kvc-lower-to-loops`;
    the host code checks the runtime's layout (page size, every head's
    encodings and block offsets) before launching and the combine kernel
    writes NaN on a mismatch. Per-KV-head encodings get one split kernel per
    run of heads with the same encoding. Kernel pointers are the runtime's
    backend memory (device memory on the CUDA backend); tensors are expected
    in device memory.

    `kvc.quantize` (static shapes) becomes a kernel with a thread per group
    (fp8: per token) that quantizes and packs with the CPU lowering's
    quantizer (GroupQuantizer, FP8Quantizer: the numerics library's, bit
    for bit on the CPU), launched by the host code.

    `kvc.append` becomes a reservation in the runtime
    (`kvc_rt_mlir_reserve_append`) and an append kernel per run of KV heads
    that quantizes and packs a flushed residual block into the pages and
    stages the new tokens' fp16 rows (AppendWriter, the CPU lowering's
    `append=generated` emitter).

    Attention and append kernels run on the cache's stream
    (`kvc_rt_mlir_gpu_stream`, the stream the runtime's copies use, as the
    async token of the launches), each op's stream waiting on the device
    for the previous op's; one `kvc_rt_mlir_gpu_synchronize` precedes the
    function's return, so results are complete when it returns
    (`wait-on-return=false` leaves it out: the caller synchronizes).

    The kernels write a result into the caller's buffer: each tensor
    result of `kvc.attend` and `kvc.quantize` must be returned once from
    its function's body (other ops may read it too), else it would be a
    host allocation the GPU cannot write. kvc's GPU emulator, whose device
    memory is the host's, keeps the rule, so that it accepts what a GPU
    can run.

    A mask operand (`batch x (1 | q_heads) x 1 x tokens`, such as the
    padding mask of Hugging Face decoders) is added to the scores in the
    split kernel; a sequence whose token count is not the mask's gets NaN
    outputs, as on the CPU, rather than reads past the mask.

    head_dim is a multiple of 32 whose channels whole warps of the block
    divide in the CUDA-core value pass (32, 64, 96, 128, 192, 256, 384,
    512, ... at 128 threads; at 96 and 192 a warp sits that pass out); the
    tensor-core passes take 64 and 128. Not lowered yet, each a compile-time
    error naming the op: attention with more than one query token, with
    dynamic shapes, and key/value reductions or eviction.
  }];
  let options = [
    Option<"pageTokens", "page-tokens", "unsigned", /*default=*/"64",
           "Tokens per runtime page (must match the runtime cache)">,
    Option<"splitTokens", "split-tokens", "unsigned", /*default=*/"512",
           "Tokens per split of the split-K kernel (a multiple of 32): "
           "the most; see split-blocks">,
    Option<"splitBlocks", "split-blocks", "unsigned", /*default=*/"512",
           "Blocks the host aims the split kernel's grid at: when splits of "
           "split-tokens give fewer (longest sequence x batch x KV heads / "
           "split-tokens), each call takes shorter splits (multiples of 32 "
           "tokens, at least 64) so that small batches and short sequences "
           "still fill the GPU. 512 (the default) measured 2.1-3.3x faster "
           "than 0 at batch 1 and S <= 4k on an H200, and 1024 slower at "
           "S = 32k (benchmarks/results/gpu.md); 0 keeps split-tokens">,
    Option<"blockThreads", "block-threads", "unsigned", /*default=*/"128",
           "Threads per block of the split-K kernel (a power of two, 32 to "
           "1024)">,
    Option<"minBlocksPerSM", "min-blocks-per-sm", "unsigned", /*default=*/"5",
           "Blocks of the split-K kernel that must fit on one SM "
           "(nvvm.minctasm, CUDA's __launch_bounds__ minimum): ptxas gets "
           "65536 / (blocks * threads) registers. 5 is the most at which no "
           "kernel variant spills on sm_80 or sm_90a (kvc-gpu-pipeline.test); "
           "0 leaves ptxas its own target, the occupancy shared memory "
           "allows, at which the unrolled dequantization spills">,
    Option<"codeToFloat", "code-to-float", "std::string",
           /*default=*/"\"bits\"",
           "How the attention kernels turn integer codes into floats: "
           "'bits' (OR into the mantissa of 2^23, minus 2^23: full-rate "
           "integer and float operations) or 'convert' (cvt.rn.f32.u32: I2F "
           "on sm_80's conversion unit, I2FP.F32.U32 on sm_90a); both exact, "
           "to be compared on a GPU">,
    Option<"keyProduct", "key-product", "std::string", /*default=*/"\"fma\"",
           "Where the split kernel's key dot products run: 'fma' (CUDA "
           "cores, f32, a thread per token) or 'mma' (tensor cores: a warp "
           "per 16 tokens, dequantized keys and the queries rounded to fp16 "
           "into mma.sync.m16n8k16 with f32 accumulation; channel-axis "
           "2/4/8-bit keys as their codes (fp16 subnormals), their scales "
           "folded into the "
           "queries and their zeros summed by one more mma; head_dim 64 or "
           "128, at most 8 query heads per KV head, other sites are an "
           "error)">,
    Option<"valueProduct", "value-product", "std::string",
           /*default=*/"\"fma\"",
           "Where the split kernel's weighted sum of values runs: 'fma' "
           "(CUDA cores, f32, a thread per channel span and token lane) or "
           "'mma' (tensor cores: a warp per 16 tokens and all channels, "
           "dequantized values rounded to fp16 and the weights as fp16 hi "
           "and lo parts into mma.sync.m16n8k16 with f32 accumulation; "
           "token-axis 2/4/8-bit values in groups of the whole head as "
           "their codes (fp16 subnormals), the scales folded into the "
           "weights; "
           "head_dim 64 or 128, at most 8 query heads per KV head, other "
           "sites are an error)">,
    Option<"mmaCodes", "mma-codes", "std::string",
           /*default=*/"\"subnormal\"",
           "How the tensor-core passes read the codes whose scales they "
           "fold (channel-axis 2/4/8-bit keys, token-axis values in groups "
           "of the whole head): 'subnormal' (ANDed into fp16 halves with "
           "exponent 0, code * 2^(bit - 24): one LOP3 a pair; needs tensor "
           "cores that take binary16 subnormal inputs exactly, as Fasi et "
           "al. measured on V100, T4 and A100) or 'normal' (ORed into a "
           "power of two, the power subtracted: the codes themselves, one "
           "HADD2 a pair more, about 0.5 SASS instructions a key and a "
           "value element; and the folded value weights split times 2^6 "
           "more, which keeps their lo parts fp16 normals but needs token "
           "ranges of values below 768: for tensor cores that flush "
           "subnormal inputs). Needs key-product=mma or "
           "value-product=mma">,
    Option<"l2Prefetch", "l2-prefetch", "std::string", /*default=*/"\"none\"",
           "Whether a split block first requests its page blocks into L2 "
           "(at its start the keys' and the values' that fit in "
           "l2-prefetch-bytes, after the key pass the other values'), so "
           "that its "
           "warps' loads wait for L2 rather than DRAM: 'none', 'lines' "
           "(prefetch.global.L2, one a 128-byte line) or 'bulk' "
           "(cp.async.bulk.prefetch.L2, one a page block); LLVM's NVPTX "
           "backend selects both from sm_90 on">,
    Option<"l2PrefetchBytes", "l2-prefetch-bytes", "unsigned",
           /*default=*/"49152",
           "The most bytes of each side a split block prefetches (whole "
           "page blocks from the split's first, at least one), and of both "
           "at its start: the blocks resident on an SM share its part of "
           "L2">,
    Option<"keyStages", "key-stages", "unsigned", /*default=*/"0",
           "Shared-memory stages each warp of the tensor-core key pass "
           "copies its next 32-token units into with cp.async (16 bytes a "
           "lane, sm_80 and later) while it multiplies the current one: 0 "
           "(the default) reads the pages directly; N >= 2 keeps N - 1 "
           "units in flight. Channel-axis 2-, 4- and 8-bit keys with "
           "key-product=mma only (other sites are an error)">,
    Option<"valueStages", "value-stages", "unsigned", /*default=*/"0",
           "The same for the tensor-core value pass's 16-token interior "
           "blocks: token-axis 2-, 4- and 8-bit values with "
           "value-product=mma only (other sites are an error)">,
    Option<"combine", "combine", "std::string", /*default=*/"\"kernel\"",
           "Where the splits are merged: 'kernel' (a combine kernel, grid "
           "(query heads, batch), launched after the split kernels) or "
           "'fused' (each split block counts itself in on an int32 counter "
           "of its sequence and KV head, kvc_rt_mlir_gpu_counters, and the "
           "last one merges the splits of the head's query heads and sets "
           "the counter back to zero: one launch an attention, and the "
           "merge starts as soon as a head's splits are done)">,
    Option<"maxSharedMemory", "max-shared-memory", "unsigned",
           /*default=*/"49152",
           "Bytes of shared memory a split block may take in all. The "
           "stages are dynamic shared memory, which the launch can raise "
           "past the 48 KB every GPU allows up to the chip's opt-in limit "
           "(kvc-gpu-pipeline sets its chip's: 166912 on sm_80, 232448 on "
           "sm_90); what does not fit is an error">,
    Option<"waitOnReturn", "wait-on-return", "bool", /*default=*/"true",
           "Whether a function waits on the host for its kernels before it "
           "returns (kvc_rt_mlir_gpu_synchronize of the last kvc op's "
           "stream), so that its results are complete then. false: it "
           "returns with them enqueued on that cache's stream "
           "(kvc_rt_cache_stream), which the runtime's own later work on "
           "the cache follows; the caller orders its work behind that "
           "stream or waits with kvc_rt_cache_synchronize, and leaves the "
           "inputs unchanged until then. Ops nested in regions and "
           "kvc.quantize still wait">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::bufferization::BufferizationDialect",
    "::mlir::func::FuncDialect", "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::NVVM::NVVMDialect",
    "::mlir::nvgpu::NVGPUDialect", "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def KVCCheckHostBuffers : Pass<"kvc-check-host-buffers", "ModuleOp"> {
  let summary = "Check that bufferized GPU host code leaves buffers to the "
                "kernels";
  let description = [{
    kvc-gpu-pipeline runs this after bufferization. The host code that
    `kvc-lower-to-gpu` writes only checks layouts, calls the runtime and
    launches kernels: its tensors are device memory (the caller's), which
    only the kernels read and write. Bufferization can still leave buffer
    operations in it, for instance a `memref.alloc` and `memref.copy` for a
    sliced query (the kernels take identity-layout buffers) or an
    allocation for a result that is not returned. On the host they would
    read device memory or hand the kernels host memory, so each
    `memref.alloc`, `memref.alloca` and operation that reads or writes a
    memref outside a `gpu.module` (and outside `gpu.launch_func`) is an
    error at the operation, located where bufferization made it.
  }];
  let dependentDialects = [
    "::mlir::gpu::GPUDialect", "::mlir::memref::MemRefDialect"
  ];
}

def KVCStableHLOToLinalg : Pass<"kvc-stablehlo-to-linalg", "ModuleOp"> {
  let summary = "Convert StableHLO in generic form to linalg-on-tensors";
  let description = [{
    The StableHLO frontend. kvc has no StableHLO dialect: the input is the
    generic form JAX prints
    (`lowered.compiler_ir('stablehlo').operation.get_asm(print_generic_op_form=True)`),
    parsed with `--allow-unregistered-dialect`, and StableHLO attributes
    (`#stablehlo.dot<...>`, `#stablehlo.gather<...>`,
    `#stablehlo.scatter<...>`, `#stablehlo<comparison_direction LT>`, ...)
    are read from their opaque text.

    Every `stablehlo.*` op becomes linalg, tensor, arith, math (and scf for
    scatter) on the same tensor types: elementwise ops and broadcasts are
    `linalg.generic`, `dot_general` a contraction (`linalg.matmul`,
    `linalg.batch_matmul` or a `linalg.generic` with a multiply-add body),
    `reduce` a `linalg.generic` with reduction loops, `reshape`
    `tensor.collapse_shape`/`tensor.expand_shape`, `dynamic_update_slice`
    `tensor.insert_slice` with clamped offsets, `gather` a `linalg.generic`
    reading the operand with `tensor.extract`, `scatter` loops of
    `tensor.insert`. These are the forms `kvc-raise-attention` reads.
    Calls to private functions (JAX's `@_where`, `@silu`, ...) are inlined
    first, so that attention spread over them becomes visible.

    With `unstack-caches`, a function argument holding the caches of all
    layers (`[layers, B, H, S, D]`, what JAX code with one cache array
    writes) whose layers are only updated with dynamic_update_slice and read
    with slices at static layer offsets becomes one argument per layer, and
    the returned stack one result per layer (in its place): the per-layer
    form `kvc-raise-attention` turns into `!kvc.cache` values.

    `precision_config` is accepted and ignored: dots multiply in their
    operand type (f32 products for f32), like XLA on CPU. A reference made
    on a GPU with DEFAULT precision (TF32 products) differs by about 1e-3
    relative.

    An op or attribute the pass does not know, a malformed attribute,
    a dynamic shape or an unsupported element type is an error located at
    the op that names it; nothing is converted then.
  }];
  let options = [
    Option<"inlinePrivateCalls", "inline-private-calls", "bool",
           /*default=*/"true",
           "Inline calls to private functions and drop those left unused">,
    Option<"unstackCaches", "unstack-caches", "bool", /*default=*/"false",
           "Split arguments that stack the caches of all layers "
           "([layers, ...], updated and read at static layer offsets) into "
           "one argument and one result per layer (changes the signature)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::func::FuncDialect",
    "::mlir::linalg::LinalgDialect", "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect", "::mlir::tensor::TensorDialect"
  ];
}

#endif // KVC_CONVERSION_PASSES_TD
