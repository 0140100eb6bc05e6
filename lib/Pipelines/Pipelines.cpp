//===- Pipelines.cpp - kvc pass pipelines ---------------------------------===//

#include "kvc/Pipelines/Pipelines.h"
#include "GPUChip.h"
#include "kvc/Conversion/Passes.h"
#include "kvc/Dialect/KVC/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Utils.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <mutex>

using namespace mlir;
using namespace mlir::kvc;

void mlir::kvc::buildCompressPipeline(OpPassManager &pm,
                                      const CompressPipelineOptions &options) {
  pm.addPass(createKVCRaiseAttention());
  // The raised IR leaves the old concat/transposes dead.
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  KVCDecoupleCompressionOptions decouple;
  decouple.spec = options.spec;
  decouple.layers = options.layers;
  decouple.storageType = options.storageType;
  pm.addPass(createKVCDecoupleCompression(decouple));
  if (options.budget > 0.0) {
    KVCSelectBitwidthsOptions select;
    select.budget = options.budget;
    select.stats = options.stats;
    select.granularity = options.granularity;
    if (!options.evictFractions.empty()) {
      select.context = options.context;
      select.evictFractions.assign(options.evictFractions.begin(),
                                   options.evictFractions.end());
    }
    // The selection's table goes to stderr; report/report-file are the
    // cache report's (run kvc-select-bitwidths alone for its JSON).
    select.report = options.report == "none" ? "none" : "text";
    pm.addPass(createKVCSelectBitwidths(select));
  }
  // After the selection: which caches have compressed keys is known.
  if (options.rotateKeys)
    pm.addPass(createKVCRotateKeys());
  if (options.report != "none") {
    KVCCacheReportOptions report;
    report.format = options.report;
    report.output = options.reportFile;
    report.batch = options.batch;
    report.context = options.context;
    pm.addPass(createKVCCacheReport(report));
  }
}

namespace {
/// Stands in for a pipeline whose options are bad: fails with the reason,
/// located at the module, instead of aborting the tool.
struct BadPipelineOptions
    : public PassWrapper<BadPipelineOptions, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(BadPipelineOptions)
  explicit BadPipelineOptions(std::string message)
      : message(std::move(message)) {}
  StringRef getArgument() const override { return "kvc-bad-pipeline-options"; }
  void runOnOperation() override {
    emitError(getOperation().getLoc()) << message;
    signalPassFailure();
  }
  std::string message;
};

/// Fails, with one line naming what is missing and where it was looked for,
/// when a module has kernels to compile to PTX or a binary and the CUDA
/// toolkit lacks a part that format needs: libdevice (the kernels' math
/// functions; without it upstream leaves them as unresolved externs in the
/// PTX, which no driver loads) and the tools (ptxas, fatbinary). Upstream
/// reports the missing tools too, but unlocated and with the whole gpu.module
/// printed after the error.
struct RequireCUDAToolkit
    : public PassWrapper<RequireCUDAToolkit, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(RequireCUDAToolkit)
  RequireCUDAToolkit(std::string format, SmallVector<std::string> tools)
      : format(std::move(format)), tools(std::move(tools)) {}
  StringRef getArgument() const override { return "kvc-require-cuda-toolkit"; }
  void runOnOperation() override {
    gpu::GPUModuleOp kernels;
    getOperation().walk([&](gpu::GPUModuleOp module) {
      kernels = module;
      return WalkResult::interrupt();
    });
    if (!kernels)
      return;
    StringRef toolkit = NVVM::getCUDAToolkitPath();
    auto missing = [&](StringRef what, bool searchedPath, StringRef at) {
      InFlightDiagnostic diag = emitError(kernels.getLoc())
                                << "kvc-gpu-pipeline: format=" << format
                                << " needs " << what
                                << " from the CUDA toolkit: "
                                << (searchedPath ? "not on PATH, and " : "");
      if (toolkit.empty())
        diag << "no toolkit is named by $CUDA_ROOT, $CUDA_HOME or $CUDA_PATH";
      else
        diag << "not at '" << at
             << "' (in the toolkit named by $CUDA_ROOT, $CUDA_HOME or "
                "$CUDA_PATH)";
      diag << "; set one of those, or use format=llvm for the GPU emulator";
      signalPassFailure();
    };
    // Where the serializer links it from.
    SmallString<128> libdevice(toolkit);
    llvm::sys::path::append(libdevice, "nvvm", "libdevice", "libdevice.10.bc");
    if (toolkit.empty() || !llvm::sys::fs::is_regular_file(libdevice))
      return missing("libdevice (the kernels' math functions)",
                     /*searchedPath=*/false, libdevice);
    // The serializer's search for its tools: PATH, then the toolkit.
    for (const std::string &tool : tools) {
      if (llvm::sys::findProgramByName(tool))
        continue;
      SmallString<128> inToolkit(toolkit);
      llvm::sys::path::append(inToolkit, "bin", tool);
      if (!llvm::sys::fs::can_execute(inToolkit))
        return missing("`" + tool + "`", /*searchedPath=*/true, inToolkit);
    }
  }
  std::string format;
  SmallVector<std::string> tools;
};

} // namespace

void mlir::kvc::buildCPUPipeline(OpPassManager &pm,
                                 const CPUPipelineOptions &options) {
  if (options.append != "runtime" && options.append != "generated") {
    pm.addPass(std::make_unique<BadPipelineOptions>(
        "kvc-cpu-pipeline: append must be `runtime` or `generated`, not `" +
        options.append.getValue() + "`"));
    return;
  }
  if (options.keyReads != "rows" && options.keyReads != "parts") {
    pm.addPass(std::make_unique<BadPipelineOptions>(
        "kvc-cpu-pipeline: key-reads must be `rows` or `parts`, not `" +
        options.keyReads.getValue() + "`"));
    return;
  }
  if (options.valueReads != "f32" && options.valueReads != "f16") {
    pm.addPass(std::make_unique<BadPipelineOptions>(
        "kvc-cpu-pipeline: value-reads must be `f32` or `f16`, not `" +
        options.valueReads.getValue() + "`"));
    return;
  }
  // Upstream passes, by their registered names: the textual form is the one
  // users would write with --pass-pipeline and is checked when parsed.
  std::string pipeline = llvm::formatv(
      "kvc-lower-to-loops{{page-tokens={0} append={1} key-reads={2} "
      "value-reads={3}},"
      "func.func(convert-elementwise-to-linalg),"
      "one-shot-bufferize{{bufferize-function-boundaries "
      "function-boundary-type-conversion=identity-layout-map},"
      "buffer-results-to-out-params{{modify-public-functions "
      "hoist-static-allocs},"
      "func.func(convert-linalg-to-loops),"
      "buffer-deallocation-pipeline,"
      "expand-strided-metadata,lower-affine,convert-scf-to-cf,"
      "convert-math-to-libm,convert-math-to-llvm,"
      "convert-arith-to-llvm,convert-index-to-llvm,"
      "finalize-memref-to-llvm,convert-func-to-llvm,convert-cf-to-llvm,"
      "reconcile-unrealized-casts,kvc-expand-half-fma",
      options.pageTokens.getValue(), options.append.getValue(),
      options.keyReads.getValue(), options.valueReads.getValue());
  // The textual form needs the passes registered; tools other than kvc-opt
  // (kvc-run, the Python bindings) may not have done it.
  static std::once_flag registered;
  std::call_once(registered, [] {
    registerAllPasses();
    registerKVCConversionPasses();
  });
  // A failure here is a bug in the string above, not bad user input.
  if (failed(parsePassPipeline(pipeline, pm)))
    llvm::report_fatal_error("kvc-cpu-pipeline: bad built-in pipeline");
}

void mlir::kvc::buildGPUPipeline(OpPassManager &pm,
                                 const GPUPipelineOptions &options) {
  // The options are spliced into a textual pipeline: they must be plain
  // words, and the format one the NVVM target knows.
  auto isWord = [](StringRef text, StringRef extra) {
    return !text.empty() && llvm::all_of(text, [&](char c) {
      return llvm::isAlnum(c) || c == '_' || extra.contains(c);
    });
  };
  StringRef format = options.format.getValue();
  if (!isWord(options.chip, "") ||
      (!options.features.empty() && !isWord(options.features, "+,-")) ||
      !isWord(options.codeToFloat, "") || !isWord(options.keyProduct, "") ||
      !isWord(options.valueProduct, "") || !isWord(options.l2Prefetch, "") ||
      !isWord(options.mmaCodes, "") || !isWord(options.combine, "") ||
      !llvm::is_contained({"isa", "bin", "fatbin", "llvm"}, format)) {
    pm.addPass(std::make_unique<BadPipelineOptions>(
        "kvc-gpu-pipeline: bad options chip='" + options.chip.getValue() +
        "' features='" + options.features.getValue() + "' format='" +
        format.str() + "' code-to-float='" + options.codeToFloat.getValue() +
        "' key-product='" + options.keyProduct.getValue() +
        "' value-product='" + options.valueProduct.getValue() +
        "' mma-codes='" + options.mmaCodes.getValue() + "' l2-prefetch='" +
        options.l2Prefetch.getValue() + "' combine='" +
        options.combine.getValue() +
        "' (expected e.g. chip=sm_90a features=+ptx80, format isa, bin, "
        "fatbin or llvm, code-to-float bits or convert, key-product and "
        "value-product fma or mma, mma-codes subnormal or normal, "
        "l2-prefetch none, lines or bulk, "
        "combine kernel or fused)"));
    return;
  }
  // LLVM's NVPTX backend aborts the tool on a chip, feature or PTX version
  // it does not take, and on an instruction the chip lacks: those are the
  // pipeline's errors here.
  std::string message;
  FailureOr<GPUChip> chip = lookupGPUChip(options.chip, message);
  if (failed(chip)) {
    pm.addPass(std::make_unique<BadPipelineOptions>(message));
    return;
  }
  // The first chip and PTX version each option's instructions are selected
  // for: l2-prefetch prefetch.global.L2 and cp.async.bulk.prefetch.L2, the
  // stages cp.async, key-product=mma mma.sync m16n8k16, value-product=mma
  // m16n8k8.
  struct OptionNeeds {
    bool asked;
    std::string option;
    unsigned smVersion, ptx;
    std::string instead;
  } needs[] = {
      {options.l2Prefetch.getValue() != "none",
       "l2-prefetch=" + options.l2Prefetch.getValue(), 90, 80,
       "l2-prefetch=none"},
      {options.keyStages.getValue() != 0,
       "key-stages=" + std::to_string(options.keyStages.getValue()), 80, 70,
       "key-stages=0"},
      {options.valueStages.getValue() != 0,
       "value-stages=" + std::to_string(options.valueStages.getValue()), 80, 70,
       "value-stages=0"},
      {options.keyProduct.getValue() == "mma", "key-product=mma", 80, 70,
       "key-product=fma"},
      {options.valueProduct.getValue() == "mma", "value-product=mma", 75, 65,
       "value-product=fma"},
  };
  unsigned minimumPTX = chip->minimumPTX;
  std::string ptxNeededBy = "chip " + chip->name;
  for (const OptionNeeds &need : needs) {
    if (!need.asked)
      continue;
    if (chip->smVersion < need.smVersion) {
      pm.addPass(std::make_unique<BadPipelineOptions>(
          ("kvc-gpu-pipeline: " + need.option + " needs chip sm_" +
           Twine(need.smVersion) +
           " or later (LLVM selects its NVVM instructions from sm_" +
           Twine(need.smVersion) + " on), not '" + chip->name + "'; use " +
           need.instead)
              .str()));
      return;
    }
    if (need.ptx > minimumPTX) {
      minimumPTX = need.ptx;
      ptxNeededBy = need.option;
    }
  }
  FailureOr<std::string> features =
      nvptxFeatures(options.features, minimumPTX, ptxNeededBy, message);
  if (failed(features)) {
    pm.addPass(std::make_unique<BadPipelineOptions>(message));
    return;
  }
  // 49152 bytes, which every chip allows, where the chip's opt-in limit is
  // not known.
  const unsigned sharedMemoryLimit =
      chip->sharedMemoryLimit ? chip->sharedMemoryLimit : 49152;
  if (chip->sharedMemoryLimit &&
      options.maxSharedMemory.getValue() > chip->sharedMemoryLimit) {
    pm.addPass(std::make_unique<BadPipelineOptions>(
        llvm::formatv("kvc-gpu-pipeline: max-shared-memory={0} is more than "
                      "a block of {1} may take ({2} bytes)",
                      options.maxSharedMemory.getValue(), chip->name,
                      chip->sharedMemoryLimit)
            .str()));
    return;
  }
  const unsigned maxSharedMemory = options.maxSharedMemory.getValue()
                                       ? options.maxSharedMemory.getValue()
                                       : sharedMemoryLimit;
  std::string pipeline = llvm::formatv(
      "kvc-lower-to-gpu{{page-tokens={0} split-tokens={1} "
      "min-blocks-per-sm={2} code-to-float={3} key-product={4} "
      "split-blocks={5} value-product={6} l2-prefetch={7} "
      "l2-prefetch-bytes={8} key-stages={9} value-stages={10} "
      "max-shared-memory={11} wait-on-return={12} combine={13} "
      "mma-codes={14}},"
      "one-shot-bufferize{{bufferize-function-boundaries "
      "function-boundary-type-conversion=identity-layout-map},"
      "buffer-results-to-out-params{{modify-public-functions "
      "hoist-static-allocs},kvc-check-host-buffers",
      options.pageTokens.getValue(), options.splitTokens.getValue(),
      options.minBlocksPerSM.getValue(), options.codeToFloat.getValue(),
      options.keyProduct.getValue(), options.splitBlocks.getValue(),
      options.valueProduct.getValue(), options.l2Prefetch.getValue(),
      options.l2PrefetchBytes.getValue(), options.keyStages.getValue(),
      options.valueStages.getValue(), maxSharedMemory,
      options.waitOnReturn.getValue(), options.combine.getValue(),
      options.mmaCodes.getValue());
  static std::once_flag registered;
  std::call_once(registered, [] {
    registerAllPasses();
    registerKVCConversionPasses();
  });
  if (failed(parsePassPipeline(pipeline, pm)))
    llvm::report_fatal_error("kvc-gpu-pipeline: bad built-in pipeline");
  // The emulator's bitcode (format=llvm) needs no toolkit: it runs the math
  // functions as their libm namesakes.
  if (format != "llvm") {
    SmallVector<std::string> tools;
    if (format != "isa")
      tools.push_back("ptxas");
    if (format == "fatbin")
      tools.push_back("fatbinary");
    pm.addPass(std::make_unique<RequireCUDAToolkit>(format.str(), tools));
  }
  if (failed(parsePassPipeline(
          llvm::formatv("gpu-lower-to-nvvm-pipeline{{cubin-chip={0} "
                        "cubin-features={1} cubin-format={2}}",
                        chip->name, *features, format)
              .str(),
          pm)))
    llvm::report_fatal_error("kvc-gpu-pipeline: bad built-in pipeline");
}

void mlir::kvc::registerKVCPipelines() {
  PassPipelineRegistration<GPUPipelineOptions>(
      "kvc-gpu-pipeline",
      "Lower kvc.attend to generated NVVM decode-attention kernels launched "
      "on runtime pages, then bufferize and lower kernels to PTX/cubin and "
      "the host code to LLVM",
      buildGPUPipeline);
  PassPipelineRegistration<CPUPipelineOptions>(
      "kvc-cpu-pipeline",
      "Lower kvc ops to loops over runtime pages and runtime calls, then "
      "bufferize and lower everything to the LLVM dialect",
      buildCPUPipeline);
  PassPipelineRegistration<CompressPipelineOptions>(
      "kvc-compress",
      "Raise attention to kvc ops, give every cache decoupled K/V encodings "
      "(from a spec, or chosen by the cost model under a bit budget) and "
      "report the KV memory they take",
      buildCompressPipeline);
}
