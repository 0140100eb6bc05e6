//===- Invoke.cpp - kvc-run --invoke: one call of a tensor function -------===//
//
// Arguments are matched to tensors by their `kvc.name` attribute (frontends
// put the framework's input and weight names there) or else by `arg<i>`;
// results are written as their `kvc.name` or `result<i>`. Element types must
// match the file's dtypes exactly: a silent conversion could hide an importer
// that picked the wrong type.
//
//===----------------------------------------------------------------------===//

#include "Invoke.h"
#include "Jit.h"

#include "kvc/Dialect/KVC/IR/KVCTypes.h"
#include "kvc/Pipelines/Pipelines.h"
#include "kvc/Support/SafeTensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FormatVariadic.h"

#include <cstring>

using namespace mlir;

namespace {

/// The safetensors dtype that holds `type` bit for bit, or "" if none.
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

/// A strided memref descriptor (allocated, aligned, offset, sizes, strides)
/// over an owned, 64-byte aligned buffer.
struct MemRef {
  std::vector<int64_t> shape;
  std::string dtype;
  size_t bytes = 0;
  std::unique_ptr<uint8_t[]> storage;
  uint8_t *data = nullptr;
  std::vector<int64_t> descriptor;

  MemRef(std::vector<int64_t> dims, std::string elementDtype)
      : shape(std::move(dims)), dtype(std::move(elementDtype)) {
    int64_t count = 1;
    for (int64_t d : shape)
      count *= d;
    bytes = size_t(count) * ::kvc::safeTensorsElementSize(dtype);
    storage.reset(new uint8_t[bytes + 64]);
    data = reinterpret_cast<uint8_t *>(
        (reinterpret_cast<uintptr_t>(storage.get()) + 63) & ~uintptr_t(63));
    size_t rank = shape.size();
    descriptor.assign(3 + 2 * rank, 0);
    descriptor[0] = descriptor[1] = reinterpret_cast<int64_t>(data);
    int64_t stride = 1;
    for (size_t i = rank; i-- > 0;) {
      descriptor[3 + i] = shape[i];
      descriptor[3 + rank + i] = stride;
      stride *= shape[i];
    }
  }
};

std::string shapeString(llvm::ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

} // namespace

int ::kvc::run::invokeFunction(ModuleOp module,
                                const ::kvc::run::InvokeOptions &options) {
  auto func = module.lookupSymbol<func::FuncOp>(options.entry);
  if (!func) {
    module.emitError() << "kvc-run: no function @" << options.entry;
    return 1;
  }
  if (func.isExternal()) {
    func.emitError() << "kvc-run: @" << options.entry << " has no body";
    return 1;
  }
  std::vector<::kvc::SafeTensorsFile> files;
  for (const std::string &path : options.inputs) {
    auto file = ::kvc::SafeTensorsFile::open(path);
    if (!file) {
      llvm::errs() << "kvc-run: error: " << llvm::toString(file.takeError())
                   << "\n";
      return 1;
    }
    files.push_back(std::move(*file));
  }

  auto nameOf = [](DictionaryAttr attrs, const char *prefix, unsigned i) {
    if (attrs)
      if (auto name = attrs.getAs<StringAttr>("kvc.name"))
        return name.str();
    return (llvm::Twine(prefix) + llvm::Twine(i)).str();
  };

  // Arguments: one buffer each, filled from the first file that has it.
  FunctionType type = func.getFunctionType();
  std::vector<MemRef> buffers;
  buffers.reserve(type.getNumInputs() + type.getNumResults());
  for (unsigned i = 0; i < type.getNumInputs(); ++i) {
    std::string name = nameOf(func.getArgAttrDict(i), "arg", i);
    auto error = [&]() {
      return func.emitError() << "kvc-run: argument #" << i << " ('" << name
                              << "'): ";
    };
    auto tensor = dyn_cast<RankedTensorType>(type.getInput(i));
    if (!tensor) {
      error() << "--invoke takes ranked tensors only, not "
              << type.getInput(i);
      return 1;
    }
    std::string dtype = dtypeOf(tensor.getElementType());
    if (dtype.empty()) {
      error() << "element type " << tensor.getElementType()
              << " has no safetensors dtype";
      return 1;
    }
    const ::kvc::SafeTensorsFile *file = nullptr;
    const ::kvc::SafeTensorInfo *info = nullptr;
    for (const auto &f : files)
      if ((info = f.find(name))) {
        file = &f;
        break;
      }
    if (!info) {
      error() << "no tensor '" << name << "' in the input files";
      return 1;
    }
    if (info->dtype != dtype) {
      error() << "the file holds " << info->dtype << ", the function takes "
              << dtype;
      return 1;
    }
    bool shapeMatches = int64_t(info->shape.size()) == tensor.getRank();
    for (int64_t d = 0; shapeMatches && d < tensor.getRank(); ++d)
      shapeMatches = tensor.isDynamicDim(d) ||
                     tensor.getDimSize(d) == info->shape[d];
    if (!shapeMatches) {
      error() << "the file's shape " << shapeString(info->shape)
              << " does not fit " << tensor;
      return 1;
    }
    buffers.emplace_back(info->shape, dtype);
    llvm::ArrayRef<uint8_t> raw = file->rawData(*info);
    std::memcpy(buffers.back().data, raw.data(), raw.size());
  }

  // Results become out-parameters (buffer-results-to-out-params), so their
  // shapes must be known before the call.
  std::vector<std::string> resultNames;
  for (unsigned i = 0; i < type.getNumResults(); ++i) {
    std::string name = nameOf(func.getResultAttrDict(i), "result", i);
    auto tensor = dyn_cast<RankedTensorType>(type.getResult(i));
    std::string dtype = tensor ? dtypeOf(tensor.getElementType()) : "";
    if (!tensor || !tensor.hasStaticShape() || dtype.empty()) {
      func.emitError() << "kvc-run: result #" << i << " ('" << name
                       << "') must be a static tensor of a safetensors "
                          "dtype, not "
                       << type.getResult(i);
      return 1;
    }
    buffers.emplace_back(std::vector<int64_t>(tensor.getShape()), dtype);
    // Poison: a result the code never writes shows up as NaN / garbage.
    std::memset(buffers.back().data, 0xff, buffers.back().bytes);
    resultNames.push_back(name);
  }

  // The names are read; the LLVM translation would warn about them.
  func.setAllArgAttrs(SmallVector<DictionaryAttr>(
      type.getNumInputs(), DictionaryAttr::get(module.getContext())));
  func.setAllResultAttrs(SmallVector<DictionaryAttr>(
      type.getNumResults(), DictionaryAttr::get(module.getContext())));
  func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                UnitAttr::get(module.getContext()));
  PassManager pm(module.getContext());
  mlir::kvc::CPUPipelineOptions pipelineOptions;
  pipelineOptions.pageTokens = options.pageTokens;
  mlir::kvc::buildCPUPipeline(pm, pipelineOptions);
  if (failed(pm.run(module)))
    return 1;
  auto engine = ::kvc::run::createEngine(module);
  if (!engine) {
    llvm::errs() << "kvc-run: error: JIT: "
                 << llvm::toString(engine.takeError()) << "\n";
    return 1;
  }

  // The C interface takes a pointer to each descriptor; the packed wrapper
  // takes a pointer to each of those pointers.
  std::vector<void *> descriptors, packed;
  for (MemRef &buffer : buffers)
    descriptors.push_back(buffer.descriptor.data());
  for (void *&descriptor : descriptors)
    packed.push_back(&descriptor);
  if (llvm::Error error = (*engine)->invokePacked(
          "_mlir_ciface_" + options.entry, packed)) {
    llvm::errs() << "kvc-run: error: " << llvm::toString(std::move(error))
                 << "\n";
    return 1;
  }

  std::vector<::kvc::SafeTensorToWrite> outputs;
  for (unsigned i = 0; i < resultNames.size(); ++i) {
    const MemRef &buffer = buffers[type.getNumInputs() + i];
    outputs.push_back({resultNames[i], buffer.dtype, buffer.shape,
                       std::vector<uint8_t>(buffer.data,
                                            buffer.data + buffer.bytes)});
  }
  if (llvm::Error error = ::kvc::writeSafeTensors(options.outputs, outputs)) {
    llvm::errs() << "kvc-run: error: " << llvm::toString(std::move(error))
                 << "\n";
    return 1;
  }
  llvm::outs() << llvm::formatv("kvc-run: called @{0} with {1} arguments, "
                                "wrote {2} results to {3}\n",
                                options.entry, type.getNumInputs(),
                                resultNames.size(), options.outputs);
  return 0;
}
