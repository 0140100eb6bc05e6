//===- TranslateRegistration.cpp - kvc-translate --import-onnx ------------===//
//
// Reads a binary ModelProto (the whole file; protobuf checks every length
// and tag, so a truncated or corrupt file is a parse error) and imports it.
//
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "kvc/Dialect/KVC/IR/KVCDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinTypeInterfaces.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/SourceMgr.h"

#include <limits>

using namespace mlir;

namespace kvc {

std::string parseInputShape(llvm::StringRef text, ONNXImportOptions &options) {
  auto [name, dims] = text.rsplit('=');
  if (name.empty() || dims.data() == nullptr || text.find('=') == StringRef::npos)
    return "expected name=DIMS (e.g. input_ids=2x1), got '" + text.str() + "'";
  std::vector<int64_t> shape;
  SmallVector<StringRef> parts;
  dims.split(parts, dims.contains('x') ? 'x' : ',', -1, /*KeepEmpty=*/true);
  if (dims.empty())
    parts.clear(); // a scalar
  for (StringRef part : parts) {
    int64_t d;
    if (part.trim() == "?") {
      shape.push_back(ShapedType::kDynamic);
      continue;
    }
    if (part.trim().getAsInteger(10, d) || d < 0)
      return "invalid dim '" + part.str() + "' in '" + text.str() + "'";
    shape.push_back(d);
  }
  options.inputShapes[name.str()] = std::move(shape);
  return "";
}

OwningOpRef<ModuleOp> importONNXModel(llvm::SourceMgr &sourceMgr,
                                      MLIRContext *context,
                                      const ONNXImportOptions &options) {
  const llvm::MemoryBuffer *buffer =
      sourceMgr.getMemoryBuffer(sourceMgr.getMainFileID());
  StringRef fileName = buffer->getBufferIdentifier();
  Location fileLoc = FileLineColLoc::get(context, fileName, 0, 0);
  StringRef bytes = buffer->getBuffer();
  if (bytes.size() > size_t(std::numeric_limits<int>::max())) {
    emitError(fileLoc) << "model is larger than 2 GiB; use external data";
    return nullptr;
  }
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), int(bytes.size()))) {
    emitError(fileLoc) << "not a valid ONNX model (protobuf parse failed: "
                          "truncated or corrupt file?)";
    return nullptr;
  }
  if (!model.has_graph()) {
    emitError(fileLoc) << "ONNX model has no graph";
    return nullptr;
  }
  context->loadDialect<func::FuncDialect, arith::ArithDialect,
                       linalg::LinalgDialect, tensor::TensorDialect,
                       math::MathDialect, mlir::kvc::KVCDialect>();
  onnx_import::Importer importer(context, model, fileName, options);
  return importer.run();
}

void registerONNXImportDialects(DialectRegistry &registry) {
  registry.insert<func::FuncDialect, arith::ArithDialect,
                  linalg::LinalgDialect, tensor::TensorDialect,
                  math::MathDialect, mlir::kvc::KVCDialect>();
}

llvm::cl::OptionCategory &getONNXImportOptionCategory() {
  static llvm::cl::OptionCategory category("ONNX import options");
  return category;
}

void registerFromONNXTranslation() {
  llvm::cl::OptionCategory &category = getONNXImportOptionCategory();
  static llvm::cl::list<std::string> inputShapes(
      "input-shape",
      llvm::cl::desc("Shape of a graph input: name=2x1 or name=1x2x?x64, where ? "
                     "keeps a dim dynamic (repeatable)"),
      llvm::cl::cat(category));
  static llvm::cl::opt<std::string> weightsOut(
      "weights-out",
      llvm::cl::desc("Write the initializers that become function arguments "
                     "to this .safetensors file"),
      llvm::cl::init(""), llvm::cl::cat(category));
  static llvm::cl::opt<int64_t> maxInline(
      "max-inline-elements",
      llvm::cl::desc("Initializers with at most this many elements become IR "
                     "constants; larger ones function arguments"),
      llvm::cl::init(64), llvm::cl::cat(category));
  static llvm::cl::opt<std::string> functionName(
      "onnx-function-name", llvm::cl::desc("Name of the imported function"),
      llvm::cl::init("main"), llvm::cl::cat(category));

  static TranslateToMLIRRegistration registration(
      "import-onnx", "ONNX model (.onnx) to func + linalg IR",
      [](llvm::SourceMgr &sourceMgr,
         MLIRContext *context) -> OwningOpRef<Operation *> {
        ONNXImportOptions options;
        for (const std::string &entry : inputShapes) {
          std::string problem = parseInputShape(entry, options);
          if (!problem.empty()) {
            emitError(UnknownLoc::get(context))
                << "--input-shape: " << problem;
            return nullptr;
          }
        }
        options.weightsOut = weightsOut;
        options.maxInlineElements = maxInline;
        options.functionName = functionName;
        return importONNXModel(sourceMgr, context, options);
      },
      registerONNXImportDialects);
}

} // namespace kvc
