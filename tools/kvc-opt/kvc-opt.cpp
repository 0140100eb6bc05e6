//===- kvc-opt.cpp - kvc optimizer driver ---------------------------------===//
//
// mlir-opt with the kvc dialect and passes, plus the upstream dialects,
// passes and extensions a user compiling model IR needs.
//
//===----------------------------------------------------------------------===//

#include "kvc/Dialect/KVC/IR/KVCDialect.h"
#include "kvc/Conversion/Passes.h"
#include "kvc/Dialect/KVC/Transforms/Passes.h"
#include "kvc/Pipelines/Pipelines.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "llvm/Support/CommandLine.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::kvc::registerKVCPasses();
  mlir::kvc::registerKVCConversionPasses();
  mlir::kvc::registerKVCPipelines();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registry.insert<mlir::kvc::KVCDialect>();
  // gpu-module-to-binary (kvc-gpu-pipeline) translates GPU modules to LLVM
  // IR and serializes them for the NVVM target: PTX, or a cubin via ptxas.
  mlir::registerAllToLLVMIRTranslations(registry);
  mlir::NVVM::registerNVVMTargetInterfaceExternalModels(registry);

  // --help lists the passes, pipelines and the driver's options (registered
  // by MlirOptMain, after this), not the hundreds of options every LLVM
  // library registers when it loads (those still parse, unlisted).
  static llvm::cl::OptionCategory driverCategory("kvc-opt options");
  llvm::cl::HideUnrelatedOptions(driverCategory);
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "kvc optimizer driver: KV-cache compression passes\n",
      registry));
}
