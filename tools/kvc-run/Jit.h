//===- Jit.h - JIT engine of kvc-run with the runtime's symbols -*- C++ -*-===//
//
// Both modes of kvc-run (decode steps on runtime caches, and one call of a
// tensor function) JIT the module lowered by kvc-cpu-pipeline; the runtime
// is linked into the tool, so its entry points are handed to the JIT here.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_TOOLS_KVC_RUN_JIT_H
#define KVC_TOOLS_KVC_RUN_JIT_H

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <memory>

namespace kvc::run {

/// Builds an optimizing (-O2) JIT for an LLVM-dialect module and registers
/// the runtime's `kvc_rt_mlir_*` entry points.
llvm::Expected<std::unique_ptr<mlir::ExecutionEngine>>
createEngine(mlir::ModuleOp module);

} // namespace kvc::run

#endif // KVC_TOOLS_KVC_RUN_JIT_H
