//===- kvc-translate.cpp - kvc's translation driver -----------------------===//
//
// mlir-translate with kvc's frontends: `--import-onnx model.onnx` prints the
// model as func + linalg IR (see include/kvc/Target/ONNX/ImportONNX.h).
//
//===----------------------------------------------------------------------===//

#include "kvc/Target/ONNX/ImportONNX.h"

#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"
#include "llvm/Support/CommandLine.h"

int main(int argc, char **argv) {
  kvc::registerFromONNXTranslation();
  // --help lists the translations, the driver's options (registered by
  // mlirTranslateMain, after this) and the ONNX import's, not the hundreds
  // every LLVM library registers (those still parse, unlisted).
  llvm::cl::HideUnrelatedOptions(kvc::getONNXImportOptionCategory());
  return mlir::failed(
      mlir::mlirTranslateMain(argc, argv, "kvc translation driver"));
}
