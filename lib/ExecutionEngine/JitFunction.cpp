//===- JitFunction.cpp - a compiled function on runtime caches ------------===//
//
// After kvc-cpu-pipeline a function of tensors and caches takes memref
// descriptors for its tensors and `kvc_rt_binding *` for its caches; tensor
// results become out-parameters (buffer-results-to-out-params) and the cache
// results stay as returned pointers. The C interface wrapper returns one
// pointer directly and takes a pointer to a result struct as its first
// argument for several; `call` packs its arguments to match.
//
//===----------------------------------------------------------------------===//

#include "kvc/ExecutionEngine/JitFunction.h"

#include "kvc/Dialect/KVC/IR/KVCAttrs.h"
#include "kvc/Dialect/KVC/IR/KVCOps.h"
#include "kvc/Dialect/KVC/IR/KVCTypes.h"
#include "kvc/Dialect/KVC/Transforms/CacheRoots.h"
#include "kvc/GPUEmulator/Emulator.h"
#include "kvc/Pipelines/Pipelines.h"
#include "kvc/Support/SafeTensors.h"
#include "kvc_runtime_binding.h"
#include "kvc_runtime_gpu.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/CRunnerUtils.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/TargetSelect.h"

#include <cstring>
#include <mutex>
#include <tuple>

using namespace mlir;
using ::kvc::exec::HostTensor;
using ::kvc::exec::JitFunction;
using ::kvc::exec::ValueInfo;

namespace {

} // namespace

namespace kvc::exec {
std::string dtypeOf(Type type) {
  if (type.isF32())
    return "F32";
  if (type.isF16())
    return "F16";
  if (type.isBF16())
    return "BF16";
  if (type.isF64())
    return "F64";
  if (type.isInteger(1))
    return "BOOL";
  if (type.isInteger(8))
    return "I8";
  if (type.isInteger(16))
    return "I16";
  if (type.isInteger(32))
    return "I32";
  if (type.isInteger(64))
    return "I64";
  return "";
}
} // namespace kvc::exec

namespace {

std::string nameOf(DictionaryAttr attrs, const char *prefix, unsigned i) {
  if (attrs)
    if (auto name = attrs.getAs<StringAttr>("kvc.name"))
      return name.str();
  return (llvm::Twine(prefix) + llvm::Twine(i)).str();
}

std::string shapeString(llvm::ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? "," : "") + (shape[i] < 0 ? "?" : std::to_string(shape[i]));
  return s + "]";
}

/// A strided memref descriptor (allocated, aligned, offset, sizes, strides)
/// over a row-major buffer.
std::vector<int64_t> descriptorOf(const HostTensor &tensor) {
  size_t rank = tensor.shape().size();
  std::vector<int64_t> descriptor(3 + 2 * rank, 0);
  descriptor[0] = descriptor[1] =
      reinterpret_cast<int64_t>(const_cast<uint8_t *>(tensor.data()));
  int64_t stride = 1;
  for (size_t i = rank; i-- > 0;) {
    descriptor[3 + i] = tensor.shape()[i];
    descriptor[3 + rank + i] = stride;
    stride *= tensor.shape()[i];
  }
  return descriptor;
}

/// The GPU emulator's recorded error (cleared), or success.
llvm::Error takeEmulatorError() {
  std::string message = ::kvc::gpuemu::lastError();
  if (message.empty())
    return llvm::Error::success();
  ::kvc::gpuemu::clearError();
  return llvm::createStringError(message);
}

/// An optimizing (-O2) JIT that resolves the runtime's `kvc_rt_mlir_*`
/// entry points to the copies linked into this binary (a Python extension
/// does not export them to the process).
llvm::Expected<std::unique_ptr<ExecutionEngine>>
createEngine(ModuleOp module, bool emulatedGPU) {
  // Hosts (a Python extension, a tool) need not have set up the native
  // target themselves.
  static std::once_flag nativeTarget;
  std::call_once(nativeTarget, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
  ExecutionEngineOptions engineOptions;
  engineOptions.transformer = makeOptimizingTransformer(2, 0, nullptr);
  auto engine = ExecutionEngine::create(module, engineOptions);
  if (!engine)
    return engine.takeError();
  (*engine)->registerSymbols([emulatedGPU](
                                 llvm::orc::MangleAndInterner interner) {
    llvm::orc::SymbolMap symbols;
    auto add = [&](const char *name, void *address) {
      symbols[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                                 llvm::JITSymbolFlags::Exported};
    };
    add("_mlir_ciface_kvc_rt_mlir_append",
        reinterpret_cast<void *>(&_mlir_ciface_kvc_rt_mlir_append));
    add("kvc_rt_mlir_reserve_append",
        reinterpret_cast<void *>(&kvc_rt_mlir_reserve_append));
    add("kvc_rt_mlir_check_layout",
        reinterpret_cast<void *>(&kvc_rt_mlir_check_layout));
    add("kvc_rt_mlir_check_head",
        reinterpret_cast<void *>(&kvc_rt_mlir_check_head));
    add("kvc_rt_mlir_num_tokens",
        reinterpret_cast<void *>(&kvc_rt_mlir_num_tokens));
    add("kvc_rt_mlir_compressed_tokens",
        reinterpret_cast<void *>(&kvc_rt_mlir_compressed_tokens));
    add("kvc_rt_mlir_pool", reinterpret_cast<void *>(&kvc_rt_mlir_pool));
    add("kvc_rt_mlir_page_table",
        reinterpret_cast<void *>(&kvc_rt_mlir_page_table));
    add("kvc_rt_mlir_residual",
        reinterpret_cast<void *>(&kvc_rt_mlir_residual));
    add("_mlir_ciface_kvc_rt_mlir_evict",
        reinterpret_cast<void *>(&_mlir_ciface_kvc_rt_mlir_evict));
    add("_mlir_ciface_kvc_rt_mlir_evict_heads",
        reinterpret_cast<void *>(&_mlir_ciface_kvc_rt_mlir_evict_heads));
    add("_mlir_ciface_kvc_rt_mlir_evict_demote",
        reinterpret_cast<void *>(&_mlir_ciface_kvc_rt_mlir_evict_demote));
    add("kvc_rt_mlir_live_bitmap",
        reinterpret_cast<void *>(&kvc_rt_mlir_live_bitmap));
    add("kvc_rt_mlir_demoted_pages",
        reinterpret_cast<void *>(&kvc_rt_mlir_demoted_pages));
    // Bufferized tensor.concat / extract_slice copy strided views with it.
    add("memrefCopy", reinterpret_cast<void *>(&memrefCopy));
    if (emulatedGPU) {
      // kvc-gpu-pipeline host code: the runtime's GPU entry points (any
      // backend's caches) and the emulator behind MLIR's mgpu* ABI.
      add("kvc_rt_mlir_gpu_check_layout",
          reinterpret_cast<void *>(&kvc_rt_mlir_gpu_check_layout));
      add("kvc_rt_mlir_gpu_live_bitmaps",
          reinterpret_cast<void *>(&kvc_rt_mlir_gpu_live_bitmaps));
      add("kvc_rt_mlir_gpu_sequences",
          reinterpret_cast<void *>(&kvc_rt_mlir_gpu_sequences));
      add("kvc_rt_mlir_gpu_stream",
          reinterpret_cast<void *>(&kvc_rt_mlir_gpu_stream));
      add("kvc_rt_mlir_gpu_synchronize",
          reinterpret_cast<void *>(&kvc_rt_mlir_gpu_synchronize));
      add("kvc_rt_mlir_gpu_workspace",
          reinterpret_cast<void *>(&kvc_rt_mlir_gpu_workspace));
      add("kvc_rt_mlir_gpu_counters",
          reinterpret_cast<void *>(&kvc_rt_mlir_gpu_counters));
      ::kvc::gpuemu::forEachMgpuFunction(add);
    }
    return symbols;
  });
  // Global constructors load the kernel modules (mgpuModuleLoad).
  if (emulatedGPU) {
    ::kvc::gpuemu::clearError();
    (*engine)->initialize();
    if (llvm::Error error = takeEmulatorError())
      return std::move(error);
  }
  return std::move(*engine);
}

llvm::Error compileError() {
  return llvm::createStringError("compilation failed (see the diagnostics)");
}

} // namespace

namespace kvc::exec {
size_t dtypeSize(const std::string &dtype) {
  return ::kvc::safeTensorsElementSize(dtype);
}
} // namespace kvc::exec

HostTensor::HostTensor(std::vector<int64_t> shape, std::string dtype)
    : dims(std::move(shape)), elementDtype(std::move(dtype)) {
  byteSize = size_t(numElements()) * dtypeSize(elementDtype);
  storage.reset(new uint8_t[byteSize + 64]);
  aligned = reinterpret_cast<uint8_t *>(
      (reinterpret_cast<uintptr_t>(storage.get()) + 63) & ~uintptr_t(63));
}

HostTensor HostTensor::view(std::vector<int64_t> shape, std::string dtype,
                            void *data) {
  HostTensor tensor({0}, std::move(dtype));
  tensor.dims = std::move(shape);
  tensor.byteSize = size_t(tensor.numElements()) * dtypeSize(tensor.dtype());
  tensor.storage.reset();
  tensor.aligned = static_cast<uint8_t *>(data);
  return tensor;
}

int64_t HostTensor::numElements() const {
  int64_t count = 1;
  for (int64_t d : dims)
    count *= d;
  return count;
}

JitFunction::~JitFunction() = default;

llvm::Expected<std::unique_ptr<JitFunction>>
JitFunction::compile(ModuleOp module, llvm::StringRef entry,
                     unsigned pageTokens,
                     llvm::function_ref<LogicalResult(PassManager &)> configure,
                     llvm::StringRef append, llvm::StringRef keyReads,
                     llvm::StringRef valueReads,
                     const std::optional<std::string> &emulatedGPU) {
  auto func = module.lookupSymbol<func::FuncOp>(entry);
  if (!func) {
    emitError(module.getLoc()) << "no function @" << entry;
    return compileError();
  }
  if (func.isExternal()) {
    func.emitError() << "@" << entry << " has no body";
    return compileError();
  }
  std::unique_ptr<JitFunction> result(new JitFunction);
  result->pageSize = pageTokens;
  result->symbol = ("_mlir_ciface_" + entry).str();

  FunctionType type = func.getFunctionType();
  unsigned cacheIndex = 0;
  for (unsigned i = 0; i < type.getNumInputs(); ++i) {
    ValueInfo info;
    info.name = nameOf(func.getArgAttrDict(i), "arg", i);
    Type argType = type.getInput(i);
    if (auto cache = dyn_cast<mlir::kvc::CacheType>(argType)) {
      info.kind = ValueInfo::Kind::Cache;
      auto layer = func.getArgAttrOfType<IntegerAttr>(
          i, mlir::kvc::kLayerAttrName);
      info.layer = layer ? unsigned(layer.getInt()) : cacheIndex;
      ++cacheIndex;
      info.batch = cache.hasDynamicBatch() ? -1 : cache.getBatch();
      info.kvHeads = unsigned(cache.getNumKVHeads());
      info.headDim = unsigned(cache.getHeadDim());
      if (mlir::kvc::EncodingAttr encoding = cache.getEncoding())
        info.encoding = encoding.toNumerics();
      for (mlir::kvc::EncodingAttr head :
           mlir::kvc::getKVHeadEncodings(func.getArgument(i)))
        info.headEncodings.push_back(head.toNumerics());
      info.headEncodings.resize(info.kvHeads, info.encoding);
      info.rotatedKeys = func.getArgAttr(i, "kvc.rotated_keys") != nullptr;
    } else if (auto tensor = dyn_cast<RankedTensorType>(argType)) {
      info.dtype = ::kvc::exec::dtypeOf(tensor.getElementType());
      if (info.dtype.empty()) {
        func.emitError() << "argument #" << i << " ('" << info.name
                         << "'): element type " << tensor.getElementType()
                         << " has no host dtype";
        return compileError();
      }
      for (int64_t d : tensor.getShape())
        info.shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
    } else {
      func.emitError() << "argument #" << i << " ('" << info.name
                       << "') must be a ranked tensor or a !kvc.cache, not "
                       << argType;
      return compileError();
    }
    result->args.push_back(std::move(info));
  }
  for (unsigned i = 0; i < type.getNumResults(); ++i) {
    Type resultType = type.getResult(i);
    if (isa<mlir::kvc::CacheType>(resultType)) {
      ++result->numCacheResults;
      continue;
    }
    ValueInfo info;
    info.name = nameOf(func.getResultAttrDict(i), "result", i);
    auto tensor = dyn_cast<RankedTensorType>(resultType);
    info.dtype = tensor ? ::kvc::exec::dtypeOf(tensor.getElementType()) : "";
    // Out-parameters are allocated by the caller, before the call.
    if (!tensor || !tensor.hasStaticShape() || info.dtype.empty()) {
      func.emitError() << "result #" << i << " ('" << info.name
                       << "') must be a static tensor of a host dtype or a "
                          "!kvc.cache, not "
                       << resultType;
      return compileError();
    }
    info.shape.assign(tensor.getShape().begin(), tensor.getShape().end());
    result->tensorResults.push_back(std::move(info));
  }

  // The names are read; the LLVM translation has no use for them. Per-head
  // encodings stay for the lowering, which consumes them.
  MLIRContext *context = module.getContext();
  StringRef headEncodings = mlir::kvc::KVCDialect::getHeadEncodingsAttrName();
  SmallVector<DictionaryAttr> argAttrs;
  for (unsigned i = 0; i < type.getNumInputs(); ++i) {
    SmallVector<NamedAttribute> kept;
    if (Attribute heads = func.getArgAttr(i, headEncodings))
      kept.push_back(NamedAttribute(headEncodings, heads));
    argAttrs.push_back(DictionaryAttr::get(context, kept));
  }
  func.setAllArgAttrs(argAttrs);
  func.setAllResultAttrs(SmallVector<DictionaryAttr>(
      type.getNumResults(), DictionaryAttr::get(context)));
  func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                UnitAttr::get(context));
  PassManager pm(context);
  if (configure && failed(configure(pm)))
    return compileError();
  if (emulatedGPU) {
    // The options this function sets from its own arguments.
    for (StringRef own : {"page-tokens", "format", "key-product",
                          "value-product"})
      if (StringRef(*emulatedGPU).contains(own)) {
        emitError(module.getLoc())
            << "kvc-gpu-pipeline options '" << *emulatedGPU << "': " << own
            << " is set by the caller (page tokens, key and "
               "value reads)";
        return compileError();
      }
    mlir::kvc::GPUPipelineOptions gpuOptions;
    std::string problems;
    llvm::raw_string_ostream os(problems);
    if (failed(gpuOptions.parseFromString(*emulatedGPU, os))) {
      // The option parser prints what is wrong itself.
      emitError(module.getLoc())
          << "kvc-gpu-pipeline options '" << *emulatedGPU << "' do not parse"
          << (problems.empty() ? "" : ": ") << problems;
      return compileError();
    }
    gpuOptions.pageTokens = pageTokens;
    gpuOptions.format = "llvm";
    // The reads select the passes; as kvc-cpu-pipeline would, refuse
    // others rather than fall back to the CUDA-core ones.
    for (auto [option, value, plain, halves] :
         {std::tuple{"key-reads", keyReads, "rows", "parts"},
          std::tuple{"value-reads", valueReads, "f32", "f16"}})
      if (value != plain && value != halves) {
        emitError(module.getLoc())
            << "kvc-gpu-pipeline: " << option << " must be `" << plain
            << "` or `" << halves << "`, not `" << value << "`";
        return compileError();
      }
    gpuOptions.keyProduct = keyReads == "parts" ? "mma" : "fma";
    gpuOptions.valueProduct = valueReads == "f16" ? "mma" : "fma";
    mlir::kvc::buildGPUPipeline(pm, gpuOptions);
  } else {
    mlir::kvc::CPUPipelineOptions pipelineOptions;
    pipelineOptions.pageTokens = pageTokens;
    pipelineOptions.append = append.str();
    pipelineOptions.keyReads = keyReads.str();
    pipelineOptions.valueReads = valueReads.str();
    mlir::kvc::buildCPUPipeline(pm, pipelineOptions);
  }
  if (failed(pm.run(module)))
    return compileError();
  registerBuiltinDialectTranslation(*context);
  registerLLVMDialectTranslation(*context);
  if (emulatedGPU)
    registerGPUDialectTranslation(*context);
  auto engine = createEngine(module, emulatedGPU.has_value());
  if (!engine)
    return llvm::createStringError("JIT: " +
                                   llvm::toString(engine.takeError()));
  result->engine = std::move(*engine);
  result->emulatedGPU = emulatedGPU.has_value();
  return std::move(result);
}

llvm::Expected<std::vector<HostTensor>>
JitFunction::call(llvm::ArrayRef<const HostTensor *> tensors,
                  llvm::ArrayRef<kvc_rt_binding *> caches) {
  size_t numTensorArgs = 0, numCacheArgs = 0;
  for (const ValueInfo &arg : args)
    (arg.kind == ValueInfo::Kind::Cache ? numCacheArgs : numTensorArgs)++;
  if (tensors.size() != numTensorArgs || caches.size() != numCacheArgs)
    return llvm::createStringError(llvm::formatv(
        "the function takes {0} tensors and {1} caches, got {2} and {3}",
        numTensorArgs, numCacheArgs, tensors.size(), caches.size()));

  // Descriptors first (their addresses must stay put), then the pointers
  // to them that the packed wrapper reads.
  std::vector<std::vector<int64_t>> descriptors;
  std::vector<kvc_rt_binding *> bindings(caches.begin(), caches.end());
  size_t tensorIndex = 0;
  for (const ValueInfo &arg : args) {
    if (arg.kind == ValueInfo::Kind::Cache)
      continue;
    const HostTensor *tensor = tensors[tensorIndex++];
    if (!tensor)
      return llvm::createStringError("argument '" + arg.name +
                                     "': no tensor given");
    if (tensor->dtype() != arg.dtype)
      return llvm::createStringError("argument '" + arg.name + "': got " +
                                     tensor->dtype() + ", the function takes " +
                                     arg.dtype);
    bool fits = tensor->shape().size() == arg.shape.size();
    for (size_t d = 0; fits && d < arg.shape.size(); ++d)
      fits = arg.shape[d] < 0 || arg.shape[d] == tensor->shape()[d];
    if (!fits)
      return llvm::createStringError(
          "argument '" + arg.name + "': shape " +
          shapeString(tensor->shape()) + " does not fit " +
          shapeString(arg.shape));
    descriptors.push_back(descriptorOf(*tensor));
  }
  for (kvc_rt_binding *binding : bindings)
    if (!binding)
      return llvm::createStringError("a cache argument has no binding");
  std::vector<HostTensor> outputs;
  outputs.reserve(tensorResults.size());
  for (const ValueInfo &result : tensorResults) {
    outputs.emplace_back(result.shape, result.dtype);
    // Poison: a result the code never writes shows up as NaN / garbage.
    std::memset(outputs.back().data(), 0xff, outputs.back().bytes());
    descriptors.push_back(descriptorOf(outputs.back()));
  }

  std::vector<void *> descriptorPointers;
  for (std::vector<int64_t> &descriptor : descriptors)
    descriptorPointers.push_back(descriptor.data());
  std::vector<void *> returnedCaches(std::max(numCacheResults, 1u), nullptr);
  void *resultStruct = returnedCaches.data();
  std::vector<void *> packed;
  if (numCacheResults > 1)
    packed.push_back(&resultStruct);
  size_t descriptorIndex = 0, bindingIndex = 0;
  for (const ValueInfo &arg : args)
    packed.push_back(arg.kind == ValueInfo::Kind::Cache
                         ? static_cast<void *>(&bindings[bindingIndex++])
                         : static_cast<void *>(
                               &descriptorPointers[descriptorIndex++]));
  for (size_t i = 0; i < tensorResults.size(); ++i)
    packed.push_back(&descriptorPointers[descriptorIndex++]);
  if (numCacheResults == 1)
    packed.push_back(&returnedCaches[0]);
  if (llvm::Error error = engine->invokePacked(symbol, packed))
    return std::move(error);
  // The emulator records its first error (and then runs no kernel).
  if (emulatedGPU)
    if (llvm::Error error = takeEmulatorError())
      return std::move(error);
  for (kvc_rt_binding *binding : bindings)
    if (kvc_rt_binding_status(binding) != KVC_RT_OK)
      return llvm::createStringError(std::string("runtime: ") +
                                     kvc_rt_binding_error(binding));
  return std::move(outputs);
}
