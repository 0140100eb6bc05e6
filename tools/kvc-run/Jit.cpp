//===- Jit.cpp - JIT engine of kvc-run with the runtime's symbols ---------===//

#include "Jit.h"

#include "kvc_runtime_binding.h"

#include "mlir/ExecutionEngine/CRunnerUtils.h"
#include "mlir/ExecutionEngine/OptUtils.h"

using namespace mlir;

llvm::Expected<std::unique_ptr<ExecutionEngine>>
kvc::run::createEngine(ModuleOp module) {
  ExecutionEngineOptions engineOptions;
  engineOptions.transformer = makeOptimizingTransformer(2, 0, nullptr);
  auto engine = ExecutionEngine::create(module, engineOptions);
  if (!engine)
    return engine.takeError();
  (*engine)->registerSymbols([](llvm::orc::MangleAndInterner interner) {
    llvm::orc::SymbolMap symbols;
    auto add = [&](const char *name, void *address) {
      symbols[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                                 llvm::JITSymbolFlags::Exported};
    };
    add("_mlir_ciface_kvc_rt_mlir_append",
        reinterpret_cast<void *>(&_mlir_ciface_kvc_rt_mlir_append));
    add("kvc_rt_mlir_check_layout",
        reinterpret_cast<void *>(&kvc_rt_mlir_check_layout));
    add("kvc_rt_mlir_num_tokens",
        reinterpret_cast<void *>(&kvc_rt_mlir_num_tokens));
    add("kvc_rt_mlir_compressed_tokens",
        reinterpret_cast<void *>(&kvc_rt_mlir_compressed_tokens));
    add("kvc_rt_mlir_pool", reinterpret_cast<void *>(&kvc_rt_mlir_pool));
    add("kvc_rt_mlir_page_table",
        reinterpret_cast<void *>(&kvc_rt_mlir_page_table));
    add("kvc_rt_mlir_residual",
        reinterpret_cast<void *>(&kvc_rt_mlir_residual));
    // Bufferized tensor.concat / extract_slice copy strided views with it.
    add("memrefCopy", reinterpret_cast<void *>(&memrefCopy));
    return symbols;
  });
  return std::move(*engine);
}
