//===- Compiler.cpp - kvc._kvc: passes and pipelines on IR text -----------===//
//
// run_pipeline(ir, pipeline) parses IR text, runs a textual pass pipeline
// (any registered upstream or kvc pass, kvc-compress, kvc-cpu-pipeline) and
// returns the printed result; diagnostics become a CompileError carrying the
// located messages, as kvc-opt would print them.
//
//===----------------------------------------------------------------------===//

#include "Bindings.h"

#include "kvc/Conversion/Passes.h"
#include "kvc/Dialect/KVC/IR/KVCDialect.h"
#include "kvc/Dialect/KVC/Transforms/EncodingSpec.h"
#include "kvc/Dialect/KVC/Transforms/Passes.h"
#include "kvc/Pipelines/Pipelines.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <mutex>

namespace py = pybind11;
using namespace mlir;

namespace {

void registerEverything() {
  static std::once_flag once;
  std::call_once(once, [] {
    registerAllPasses();
    mlir::kvc::registerKVCPasses();
    mlir::kvc::registerKVCConversionPasses();
    mlir::kvc::registerKVCPipelines();
  });
}

/// A context per call: passes may load dialects, and Python callers may be
/// on several threads.
py::object runPipeline(const std::string &ir, const std::string &pipeline,
                       bool allowUnregistered, bool generic,
                       bool returnDiagnostics) {
  registerEverything();
  MLIRContext context(::kvc::python::dialectRegistry());
  context.allowUnregisteredDialects(allowUnregistered);
  std::string diagnostics;
  llvm::raw_string_ostream diagStream(diagnostics);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(ir, "<python>"), llvm::SMLoc());
  SourceMgrDiagnosticHandler handler(sourceMgr, &context, diagStream);
  std::string result;
  bool ok = [&] {
    py::gil_scoped_release release;
    OwningOpRef<ModuleOp> module =
        parseSourceFile<ModuleOp>(sourceMgr, &context);
    if (!module)
      return false;
    // The full textual form names its anchor: `builtin.module(...)`.
    FailureOr<OpPassManager> parsed = parsePassPipeline(pipeline, diagStream);
    if (failed(parsed))
      return false;
    PassManager pm(&context, parsed->getOpAnchorName());
    static_cast<OpPassManager &>(pm) = *parsed;
    if (failed(pm.run(*module)))
      return false;
    llvm::raw_string_ostream out(result);
    OpPrintingFlags flags;
    if (generic)
      flags.printGenericOpForm();
    module->print(out, flags);
    return true;
  }();
  if (!ok) {
    py::object error = py::module_::import("kvc._kvc").attr("CompileError");
    PyErr_SetString(error.ptr(), diagnostics.c_str());
    throw py::error_already_set();
  }
  if (returnDiagnostics)
    return py::make_tuple(result, diagnostics);
  return py::str(result);
}

} // namespace

namespace kvc::python {

DialectRegistry &dialectRegistry() {
  static DialectRegistry *r = [] {
    auto *result = new DialectRegistry;
    registerAllDialects(*result);
    registerAllExtensions(*result);
    result->insert<mlir::kvc::KVCDialect>();
    // kvc.compile(gpu_emulator=...): kvc-gpu-pipeline serializes the GPU
    // module through the NVVM target and translates gpu.binary for the host.
    registerAllToLLVMIRTranslations(*result);
    NVVM::registerNVVMTargetInterfaceExternalModels(*result);
    return result;
  }();
  return *r;
}

numerics::SideEncoding parseSide(const std::string &spec) {
  static MLIRContext *context = [] {
    auto *c = new MLIRContext(dialectRegistry());
    c->loadDialect<mlir::kvc::KVCDialect>();
    return c;
  }();
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  auto side = mlir::kvc::parseSideSpec(spec, context);
  if (!side)
    throw py::value_error(llvm::toString(side.takeError()));
  return side->toNumerics();
}

void bindCompiler(py::module_ &m) {
  static py::exception<std::runtime_error> compileError(m, "CompileError");
  m.def("run_pipeline", &runPipeline, py::arg("ir"), py::arg("pipeline"),
        py::arg("allow_unregistered_dialects") = false,
        py::arg("generic") = false, py::arg("return_diagnostics") = false,
        "Parse IR text, run a textual pass pipeline (e.g. "
        "'builtin.module(kvc-compress{spec=key=q4:channel:g32})') and return "
        "the result as text (with return_diagnostics, a tuple of the text and "
        "the remarks and warnings the passes emitted). Errors raise "
        "CompileError with the located diagnostics.");
}

} // namespace kvc::python
