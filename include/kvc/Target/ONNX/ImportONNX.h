//===- ImportONNX.h - ONNX model -> func + linalg IR ------------*- C++ -*-===//
//
// Translates an ONNX ModelProto into a builtin.module holding one func.func
// on tensors (linalg/tensor/arith/math, and kvc ops for the attention nodes
// that map onto them). Graph inputs and large initializers become function
// arguments named by `kvc.name`; outputs are results named the same way.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_TARGET_ONNX_IMPORTONNX_H
#define KVC_TARGET_ONNX_IMPORTONNX_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/CommandLine.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace llvm {
class SourceMgr;
} // namespace llvm

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace kvc {

struct ONNXImportOptions {
  /// Static shapes for graph inputs, replacing their (symbolic) dims.
  std::map<std::string, std::vector<int64_t>> inputShapes;
  /// Where to write the initializers that became function arguments
  /// (safetensors); empty: not written.
  std::string weightsOut;
  /// Initializers with at most this many elements become constants in the
  /// IR (shape arithmetic needs them); larger ones become arguments.
  int64_t maxInlineElements = 64;
  /// Name of the generated function.
  std::string functionName = "main";
};

/// Parses `--input-shape` entries of the form `name=2x1` or `name=2,1`
/// into `options`; returns an error message on malformed text.
std::string parseInputShape(llvm::StringRef text, ONNXImportOptions &options);

/// Imports the ONNX model held by the main buffer of `sourceMgr`. Errors are
/// emitted as diagnostics naming the node and op; returns null on failure.
mlir::OwningOpRef<mlir::ModuleOp>
importONNXModel(llvm::SourceMgr &sourceMgr, mlir::MLIRContext *context,
                const ONNXImportOptions &options);

/// Dialects the imported IR uses.
void registerONNXImportDialects(mlir::DialectRegistry &registry);

/// Registers `--import-onnx` (and its options) with mlir-translate.
void registerFromONNXTranslation();

/// The category of `--import-onnx`'s options (--input-shape, ...).
llvm::cl::OptionCategory &getONNXImportOptionCategory();

} // namespace kvc

#endif // KVC_TARGET_ONNX_IMPORTONNX_H
