//===- ONNXImportFuzzer.cpp - libFuzzer target of the ONNX importer -------===//
//
// Feeds each input to the importer as a .onnx file. Any outcome is fine
// except a crash, a sanitizer report, or a module that fails to verify
// without an error having been reported (the importer must either produce
// valid IR or say why not). Built by scripts/onnx_fuzz.sh with clang
// (-fsanitize=fuzzer,address,undefined).
//
//===----------------------------------------------------------------------===//

#include "kvc/Target/ONNX/ImportONNX.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

static std::unique_ptr<mlir::MLIRContext> makeContext() {
  mlir::DialectRegistry registry;
  kvc::registerONNXImportDialects(registry);
  auto context = std::make_unique<mlir::MLIRContext>(registry);
  context->loadAllAvailableDialects();
  // Diagnostics are expected for bad input; keep the output quiet.
  context->getDiagEngine().registerHandler([](mlir::Diagnostic &) {});
  return context;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // One context for many inputs (creating one per input would dominate),
  // renewed now and then since it keeps every type and attribute it made.
  static std::unique_ptr<mlir::MLIRContext> context;
  static unsigned uses = 0;
  if (!context || ++uses % 2000 == 0)
    context = makeContext();

  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          llvm::StringRef(reinterpret_cast<const char *>(data), size),
          "fuzz/input.onnx"),
      llvm::SMLoc());
  kvc::ONNXImportOptions options;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      kvc::importONNXModel(sourceMgr, context.get(), options);
  if (module && mlir::failed(mlir::verify(*module))) {
    std::fprintf(stderr, "importer returned a module that does not verify\n");
    std::abort();
  }
  return 0;
}
