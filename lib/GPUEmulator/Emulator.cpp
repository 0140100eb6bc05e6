//===- Emulator.cpp - the mgpu* functions over the emulator ---------------===//
//
// Modules: the bitcode rewritten (KernelRewrite.h) at the load and compiled
// by LLVM's ORC JIT at the first mgpuModuleGetFunction. Launches: the grid
// run on the calling thread (Warps.h).
//
//===----------------------------------------------------------------------===//

#include "EmulatorAbi.h"
#include "KernelRewrite.h"
#include "Warps.h"

#include "kvc/GPUEmulator/Emulator.h"

#include "llvm/Bitcode/BitcodeReader.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

using namespace llvm;
using namespace kvc::gpuemu;

namespace {

/// The first error since the start or the last clearError(), as the CUDA
/// runtime's kvc_rt_gpu_last_error keeps it.
struct ErrorRecord {
  std::mutex mutex;
  std::string message;
};

ErrorRecord &errorRecord() {
  static ErrorRecord record;
  return record;
}

bool errorRecorded() {
  ErrorRecord &record = errorRecord();
  std::lock_guard<std::mutex> lock(record.mutex);
  return !record.message.empty();
}

/// Prints the error and records it if it is the first; nullptr, for the
/// functions that return a handle.
std::nullptr_t fail(const Twine &message) {
  const std::string text = ("kvc gpu emulator: " + message).str();
  errs() << text << "\n";
  errs().flush();
  ErrorRecord &record = errorRecord();
  std::lock_guard<std::mutex> lock(record.mutex);
  if (record.message.empty())
    record.message = text;
  return nullptr;
}

struct EmulatedKernel {
  std::string name;
  KernelEntry entry = nullptr;
  struct EmulatedModule *module = nullptr;
};

/// A module is compiled when one of its kernels is first asked for: a
/// program links every variant's module (each loads in a global
/// constructor) and often runs a few, and the JIT's codegen is most of an
/// emulated check's start-up.
struct EmulatedModule {
  std::unique_ptr<orc::LLJIT> jit;
  /// The kernels by name; their entries are set once compiled.
  std::map<std::string, EmulatedKernel> kernels;
  std::vector<SharedVariable> sharedVariables;
  std::vector<SharedRegion> shared;
  bool compiled = false;
  /// What the JIT reported while compiling (an unresolved symbol, say):
  /// the lookup's own error only says that materialization failed.
  std::string jitErrors;
};

/// Dynamic shared memory (`extern __shared__`, gpu.dynamic_shared_memory):
/// one buffer for every module, as large as an H100 block may have, at an
/// odd multiple of 16 bytes (the alignment both declare; see
/// KernelRewrite.cpp).
constexpr size_t kDynamicSharedBytes = 227 * 1024;
alignas(32) char dynamicSharedStorage[kDynamicSharedBytes + 16];
char *const dynamicShared = dynamicSharedStorage + 16;

void initializeTarget() {
  static std::once_flag once;
  std::call_once(once, [] {
    InitializeNativeTarget();
    InitializeNativeTargetAsmPrinter();
  });
}

orc::SymbolMap abiSymbols(orc::LLJIT &jit) {
  orc::SymbolMap symbols;
  auto add = [&](StringRef name, const void *address) {
    symbols[jit.mangleAndIntern(name)] = {orc::ExecutorAddr::fromPtr(address),
                                          JITSymbolFlags::Exported};
  };
  add("__kvc_emu_sreg", reinterpret_cast<const void *>(&__kvc_emu_sreg));
  add("__kvc_emu_barrier", reinterpret_cast<const void *>(&__kvc_emu_barrier));
  add("__kvc_emu_shfl", reinterpret_cast<const void *>(&__kvc_emu_shfl));
  add("__kvc_emu_mma_f16_f32",
      reinterpret_cast<const void *>(&__kvc_emu_mma_f16_f32));
  add("__kvc_emu_saturate", reinterpret_cast<const void *>(&__kvc_emu_saturate));
  add("__kvc_emu_fma", reinterpret_cast<const void *>(&__kvc_emu_fma));
  add("__kvc_emu_ex2", reinterpret_cast<const void *>(&__kvc_emu_ex2));
  add("__kvc_emu_lop3", reinterpret_cast<const void *>(&__kvc_emu_lop3));
  add("__kvc_emu_prmt", reinterpret_cast<const void *>(&__kvc_emu_prmt));
  add("__kvc_emu_prefetch",
      reinterpret_cast<const void *>(&__kvc_emu_prefetch));
  add("__kvc_emu_cp_async",
      reinterpret_cast<const void *>(&__kvc_emu_cp_async));
  add("__kvc_emu_cp_async_commit",
      reinterpret_cast<const void *>(&__kvc_emu_cp_async_commit));
  add("__kvc_emu_cp_async_wait",
      reinterpret_cast<const void *>(&__kvc_emu_cp_async_wait));
  add("__kvc_emu_warp_sync",
      reinterpret_cast<const void *>(&__kvc_emu_warp_sync));
  return symbols;
}

std::string describe(Error error) { return toString(std::move(error)); }

EmulatedModule *loadModule(const void *data, size_t size) {
  initializeTarget();
  auto context = std::make_unique<LLVMContext>();
  MemoryBufferRef buffer(
      StringRef(static_cast<const char *>(data), size), "kernels.bc");
  Expected<std::unique_ptr<llvm::Module>> parsed =
      parseBitcodeFile(buffer, *context);
  if (!parsed)
    return fail("mgpuModuleLoad: not LLVM bitcode (build the kernels with "
          "kvc-gpu-pipeline format=llvm): " +
          describe(parsed.takeError()));
  auto builder = orc::JITTargetMachineBuilder::detectHost();
  if (!builder)
    return fail("mgpuModuleLoad: " + describe(builder.takeError()));
  Expected<DataLayout> layout = builder->getDefaultDataLayoutForTarget();
  if (!layout)
    return fail("mgpuModuleLoad: " + describe(layout.takeError()));
  Expected<RewrittenModule> rewritten = rewriteForHost(
      **parsed, *layout, builder->getTargetTriple().str());
  if (!rewritten)
    return fail("mgpuModuleLoad: " + describe(rewritten.takeError()));

  auto module = std::make_unique<EmulatedModule>();
  auto jit = orc::LLJITBuilder().setJITTargetMachineBuilder(*builder).create();
  if (!jit)
    return fail("mgpuModuleLoad: " + describe(jit.takeError()));
  module->jit = std::move(*jit);
  module->jit->getExecutionSession().setErrorReporter(
      [raw = module.get()](Error error) {
        raw->jitErrors +=
            (raw->jitErrors.empty() ? "" : "; ") + describe(std::move(error));
      });
  orc::JITDylib &dylib = module->jit->getMainJITDylib();
  orc::SymbolMap symbols = abiSymbols(*module->jit);
  for (const SharedVariable &variable : rewritten->shared)
    if (variable.bytes == 0)
      symbols[module->jit->mangleAndIntern(variable.symbol)] = {
          orc::ExecutorAddr::fromPtr(dynamicShared), JITSymbolFlags::Exported};
  if (Error e = dylib.define(orc::absoluteSymbols(std::move(symbols))))
    return fail("mgpuModuleLoad: " + describe(std::move(e)));
  // libm and libgcc (half conversions) from the process.
  auto process = orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      layout->getGlobalPrefix());
  if (!process)
    return fail("mgpuModuleLoad: " + describe(process.takeError()));
  dylib.addGenerator(std::move(*process));
  // libgcc's half conversions (__truncdfhf2: the x86 backend's fp16 fma) by
  // name too: a process that loaded libgcc_s as a Python extension's
  // dependency holds it RTLD_LOCAL, out of the process's global lookup.
  auto libgcc = orc::DynamicLibrarySearchGenerator::Load(
      "libgcc_s.so.1", layout->getGlobalPrefix());
  if (!libgcc)
    return fail("mgpuModuleLoad: " + describe(libgcc.takeError()));
  dylib.addGenerator(std::move(*libgcc));
  if (Error e = module->jit->addIRModule(
          orc::ThreadSafeModule(std::move(*parsed), std::move(context))))
    return fail("mgpuModuleLoad: " + describe(std::move(e)));

  for (const std::string &name : rewritten->kernels)
    module->kernels[name] = {name, nullptr, module.get()};
  module->sharedVariables = std::move(rewritten->shared);
  return module.release();
}

/// Compiles `module` (the JIT compiles the whole module at its first
/// lookup) and resolves its kernels' entries and shared variables. False,
/// with an error recorded, if that fails.
bool compileModule(EmulatedModule &module) {
  if (module.compiled)
    return true;
  // A failed lookup's own error only says that materialization failed; the
  // cause is what the session reported.
  auto lookup = [&](StringRef symbol, const Twine &what) -> void * {
    Expected<orc::ExecutorAddr> address = module.jit->lookup(symbol);
    if (address)
      return address->toPtr<void *>();
    std::string cause = describe(address.takeError());
    if (!module.jitErrors.empty())
      cause = module.jitErrors + " (" + cause + ")";
    fail("mgpuModuleGetFunction: " + what + ": " + cause);
    return nullptr;
  };
  for (auto &[name, kernel] : module.kernels) {
    void *entry = lookup(entryName(name), "kernel " + name);
    if (!entry)
      return false;
    kernel.entry = reinterpret_cast<KernelEntry>(entry);
  }
  // Filled only on success, so that a lookup tried again after a failure
  // does not list a region twice.
  std::vector<SharedRegion> shared;
  for (const SharedVariable &variable : module.sharedVariables) {
    if (variable.bytes == 0) {
      shared.push_back({dynamicShared, kDynamicSharedBytes});
      continue;
    }
    auto *start = static_cast<char *>(
        lookup(variable.symbol, "shared variable " + variable.symbol));
    if (!start)
      return false;
    shared.push_back({start + variable.offset, variable.bytes});
  }
  module.shared = std::move(shared);
  module.compiled = true;
  return true;
}

/// Whether `value` is a valid grid or block dimension (else an error).
bool checkDim(const char *what, intptr_t value) {
  if (value >= 1 && value <= 0xffffffffLL)
    return true;
  fail(Twine("mgpuLaunchKernel: ") + what + " " + Twine(int64_t(value)) +
       " is not in [1, 2^32)");
  return false;
}

} // namespace

namespace kvc {
namespace gpuemu {

std::string lastError() {
  ErrorRecord &record = errorRecord();
  std::lock_guard<std::mutex> lock(record.mutex);
  return record.message;
}

void clearError() {
  ErrorRecord &record = errorRecord();
  std::lock_guard<std::mutex> lock(record.mutex);
  record.message.clear();
}

void *moduleLoad(void *data, size_t size) {
  if (!data || size == 0)
    return fail("mgpuModuleLoad: no module data");
  return loadModule(data, size);
}

void *moduleLoadJIT(void *, int) {
  return fail("mgpuModuleLoadJIT: PTX modules cannot be emulated (build the "
              "kernels with kvc-gpu-pipeline format=llvm)");
}

void moduleUnload(void *module) { delete static_cast<EmulatedModule *>(module); }

void *moduleGetFunction(void *module, const char *name) {
  if (!module || !name)
    return fail("mgpuModuleGetFunction: no module or name");
  auto *emulated = static_cast<EmulatedModule *>(module);
  auto it = emulated->kernels.find(name);
  if (it == emulated->kernels.end())
    return fail(Twine("mgpuModuleGetFunction: no kernel '") + name + "'");
  if (!compileModule(*emulated))
    return nullptr;
  return &it->second;
}

/// The choice environment variable `variable` names (its first choice when
/// unset), passed to `set`. False, with an error recorded that names
/// `what` and the choices, for another value.
template <typename T>
static bool applyChoice(const char *variable, StringRef what,
                        ArrayRef<std::pair<StringRef, T>> choices,
                        void (*set)(T)) {
  const char *value = std::getenv(variable);
  const StringRef name = value ? value : choices.front().first;
  for (const auto &[word, choice] : choices)
    if (name == word) {
      set(choice);
      return true;
    }
  fail(Twine(variable) + "=" + name + ": not " + what + " (" +
       choices[0].first + " or " + choices[1].first + ")");
  return false;
}

/// KVC_GPU_EMULATOR_MMA: how mma.sync accumulates (Warps.h,
/// MmaAccumulation); KVC_GPU_EMULATOR_MMA_SUBNORMALS: what it does with
/// fp16 subnormal inputs (MmaSubnormalInputs). Read at each launch.
static bool applyMmaModel() {
  return applyChoice<MmaAccumulation>(
             "KVC_GPU_EMULATOR_MMA", "an mma accumulation",
             {{"round-once", MmaAccumulation::RoundOnce},
              {"truncate", MmaAccumulation::Truncating}},
             setMmaAccumulation) &&
         applyChoice<MmaSubnormalInputs>(
             "KVC_GPU_EMULATOR_MMA_SUBNORMALS",
             "a handling of subnormal mma inputs",
             {{"exact", MmaSubnormalInputs::Exact},
              {"flush", MmaSubnormalInputs::Flushed}},
             setMmaSubnormalInputs);
}

void launchKernel(void *function, intptr_t gridX, intptr_t gridY,
                  intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                  intptr_t blockZ, int32_t smem, void * /*stream*/,
                  void **params, void **extra, size_t /*count*/) {
  // As the CUDA runtime: nothing runs while an error is recorded.
  if (errorRecorded())
    return;
  if (!function) {
    fail("mgpuLaunchKernel: no kernel");
    return;
  }
  auto *kernel = static_cast<EmulatedKernel *>(function);
  if (extra) {
    fail("mgpuLaunchKernel: `extra` arguments are not supported");
    return;
  }
  if (smem < 0 || size_t(smem) > kDynamicSharedBytes) {
    fail("mgpuLaunchKernel: " + Twine(smem) + " bytes of dynamic shared "
         "memory");
    return;
  }
  if (!checkDim("grid x", gridX) || !checkDim("grid y", gridY) ||
      !checkDim("grid z", gridZ) || !checkDim("block x", blockX) ||
      !checkDim("block y", blockY) || !checkDim("block z", blockZ))
    return;
  Dim3 grid{uint32_t(gridX), uint32_t(gridY), uint32_t(gridZ)};
  Dim3 block{uint32_t(blockX), uint32_t(blockY), uint32_t(blockZ)};
  if (block.count() > 1024) {
    fail("mgpuLaunchKernel: " + Twine(block.count()) +
         " threads a block (at most 1024)");
    return;
  }
  if (!applyMmaModel())
    return;
  // The launch's dynamic shared memory is poisoned before each block, the
  // rest of the buffer once: a read past `smem` bytes sees poison too.
  std::vector<SharedRegion> shared = kernel->module->shared;
  for (SharedRegion &region : shared)
    if (region.address == dynamicShared) {
      std::memset(dynamicShared, 0xff, kDynamicSharedBytes);
      region.bytes = uint64_t(smem);
    }
  if (Error e = runGrid(kernel->entry, params, grid, block, shared))
    fail("kernel " + kernel->name + ": " + describe(std::move(e)));
}

void launchClusterKernel(void *function, intptr_t, intptr_t, intptr_t,
                         intptr_t gridX, intptr_t gridY, intptr_t gridZ,
                         intptr_t blockX, intptr_t blockY, intptr_t blockZ,
                         int32_t smem, void *stream, void **params,
                         void **extra) {
  // Clusters only group blocks; kvc's kernels use no distributed shared
  // memory, so blocks one after another are a valid schedule.
  launchKernel(function, gridX, gridY, gridZ, blockX, blockY, blockZ, smem,
               stream, params, extra, 0);
}

// Streams and events: every operation is complete when it returns.
void *streamCreate() {
  static char stream;
  return &stream;
}
void streamDestroy(void *) {}
void streamSynchronize(void *) {}
void streamWaitEvent(void *, void *) {}
void *eventCreate() {
  static char event;
  return &event;
}
void eventDestroy(void *) {}
void eventSynchronize(void *) {}
void eventRecord(void *, void *) {}

void *memAlloc(uint64_t bytes, void *, bool) {
  if (bytes == 0)
    return nullptr;
  void *p = nullptr;
  if (posix_memalign(&p, 256, bytes) != 0)
    return fail("mgpuMemAlloc: " + Twine(bytes) + " bytes: out of memory");
  return p;
}
void memFree(void *ptr, void *) { std::free(ptr); }
void memCopy(void *dst, void *src, size_t bytes, void *) {
  std::memmove(dst, src, bytes);
}
void memset32(void *dst, unsigned int value, size_t count, void *) {
  auto *p = static_cast<uint32_t *>(dst);
  for (size_t i = 0; i < count; ++i)
    p[i] = value;
}
void memset16(void *dst, unsigned short value, size_t count, void *) {
  auto *p = static_cast<uint16_t *>(dst);
  for (size_t i = 0; i < count; ++i)
    p[i] = value;
}
void setDefaultDevice(int32_t) {}

void forEachMgpuFunction(
    llvm::function_ref<void(const char *name, void *address)> visit) {
  auto v = [&](const char *name, auto *function) {
    visit(name, reinterpret_cast<void *>(function));
  };
  v("mgpuModuleLoad", &moduleLoad);
  v("mgpuModuleLoadJIT", &moduleLoadJIT);
  v("mgpuModuleUnload", &moduleUnload);
  v("mgpuModuleGetFunction", &moduleGetFunction);
  v("mgpuLaunchKernel", &launchKernel);
  v("mgpuLaunchClusterKernel", &launchClusterKernel);
  v("mgpuStreamCreate", &streamCreate);
  v("mgpuStreamDestroy", &streamDestroy);
  v("mgpuStreamSynchronize", &streamSynchronize);
  v("mgpuStreamWaitEvent", &streamWaitEvent);
  v("mgpuEventCreate", &eventCreate);
  v("mgpuEventDestroy", &eventDestroy);
  v("mgpuEventSynchronize", &eventSynchronize);
  v("mgpuEventRecord", &eventRecord);
  v("mgpuMemAlloc", &memAlloc);
  v("mgpuMemFree", &memFree);
  v("mgpuMemcpy", &memCopy);
  v("mgpuMemset32", &memset32);
  v("mgpuMemset16", &memset16);
  v("mgpuSetDefaultDevice", &setDefaultDevice);
}

} // namespace gpuemu
} // namespace kvc
