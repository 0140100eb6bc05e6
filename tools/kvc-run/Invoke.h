//===- Invoke.h - kvc-run --invoke: one call of a tensor function -*- C++ -*-===//
//
// Compiles a function of tensors with kvc-cpu-pipeline, calls it once on
// tensors read from safetensors files and writes its results to another:
// the way frontend tests compare compiled models with framework references.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_TOOLS_KVC_RUN_INVOKE_H
#define KVC_TOOLS_KVC_RUN_INVOKE_H

#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <vector>

namespace kvc::run {

struct InvokeOptions {
  std::string entry;               ///< the function to call
  std::vector<std::string> inputs; ///< safetensors files, searched in order
  std::string outputs;             ///< safetensors file to write
  unsigned pageTokens = 64;        ///< kvc-cpu-pipeline's page size
};

/// Returns the process exit code: 0 on success, 1 after a reported error.
int invokeFunction(mlir::ModuleOp module, const InvokeOptions &options);

} // namespace kvc::run

#endif // KVC_TOOLS_KVC_RUN_INVOKE_H
