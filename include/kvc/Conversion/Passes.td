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

    Ops the CPU path does not lower yet (`kvc.evict`, `kvc.fork`,
    `kvc.cache.empty`, `kvc.quantize`, `kvc.dequantize`) are a compile-time
    error, never a silent fallback.
  }];
  let options = [
    Option<"pageTokens", "page-tokens", "unsigned", /*default=*/"64",
           "Tokens per runtime page (must match the runtime cache)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::bufferization::BufferizationDialect",
    "::mlir::func::FuncDialect", "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect", "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect", "::mlir::tensor::TensorDialect"
  ];
}

#endif // KVC_CONVERSION_PASSES_TD
