//===- kvc-translate.cpp - kvc's translation driver -----------------------===//
//
// mlir-translate with kvc's frontends: `--import-onnx model.onnx` prints the
// model as func + linalg IR (see include/kvc/Target/ONNX/ImportONNX.h).
//
//===----------------------------------------------------------------------===//

#include "kvc/Target/ONNX/ImportONNX.h"

#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"

int main(int argc, char **argv) {
  kvc::registerFromONNXTranslation();
  return mlir::failed(
      mlir::mlirTranslateMain(argc, argv, "kvc translation driver"));
}
