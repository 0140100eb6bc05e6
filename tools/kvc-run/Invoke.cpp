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

#include "kvc/ExecutionEngine/JitFunction.h"
#include "kvc/Support/SafeTensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/Support/FormatVariadic.h"

#include <cstring>

using namespace mlir;
using ::kvc::exec::HostTensor;

static int fail(const llvm::Twine &message) {
  llvm::errs() << "kvc-run: error: " << message << "\n";
  return 1;
}

static std::string shapeString(llvm::ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

int ::kvc::run::invokeFunction(ModuleOp module,
                                const ::kvc::run::InvokeOptions &options) {
  auto func = module.lookupSymbol<func::FuncOp>(options.entry);
  if (!func) {
    module.emitError() << "kvc-run: no function @" << options.entry;
    return 1;
  }
  std::vector<::kvc::SafeTensorsFile> files;
  for (const std::string &path : options.inputs) {
    auto file = ::kvc::SafeTensorsFile::open(path);
    if (!file)
      return fail(llvm::toString(file.takeError()));
    files.push_back(std::move(*file));
  }

  // Arguments, checked against the signature while it still has its
  // locations and names: one tensor each, from the first file that has it.
  FunctionType type = func.getFunctionType();
  std::vector<HostTensor> tensors;
  tensors.reserve(type.getNumInputs());
  for (unsigned i = 0; i < type.getNumInputs(); ++i) {
    std::string name = ("arg" + llvm::Twine(i)).str();
    if (auto attr = func.getArgAttrOfType<StringAttr>(i, "kvc.name"))
      name = attr.str();
    auto error = [&]() {
      return func.emitError() << "kvc-run: argument #" << i << " ('" << name
                              << "'): ";
    };
    auto tensor = dyn_cast<RankedTensorType>(type.getInput(i));
    // Caches live across calls: a decode loop over them is kvc.compile's
    // job (Python), not one call's.
    if (!tensor) {
      error() << "--invoke takes ranked tensors only, not "
              << type.getInput(i)
              << " (drive functions of caches from Python: kvc.compile)";
      return 1;
    }
    std::string dtype = ::kvc::exec::dtypeOf(tensor.getElementType());
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
      shapeMatches =
          tensor.isDynamicDim(d) || tensor.getDimSize(d) == info->shape[d];
    if (!shapeMatches) {
      error() << "the file's shape " << shapeString(info->shape)
              << " does not fit " << tensor;
      return 1;
    }
    tensors.emplace_back(info->shape, info->dtype);
    llvm::ArrayRef<uint8_t> raw = file->rawData(*info);
    std::memcpy(tensors.back().data(), raw.data(), raw.size());
  }

  auto compiled = ::kvc::exec::JitFunction::compile(module, options.entry,
                                                    options.pageTokens);
  if (!compiled)
    return fail(llvm::toString(compiled.takeError()));
  ::kvc::exec::JitFunction &function = **compiled;

  std::vector<const HostTensor *> pointers;
  for (const HostTensor &tensor : tensors)
    pointers.push_back(&tensor);
  auto results = function.call(pointers, {});
  if (!results)
    return fail(llvm::toString(results.takeError()));

  std::vector<::kvc::SafeTensorToWrite> outputs;
  for (auto [info, tensor] : llvm::zip(function.results(), *results))
    outputs.push_back({info.name, tensor.dtype(), tensor.shape(),
                       std::vector<uint8_t>(tensor.data(),
                                            tensor.data() + tensor.bytes())});
  if (llvm::Error error = ::kvc::writeSafeTensors(options.outputs, outputs))
    return fail(llvm::toString(std::move(error)));
  llvm::outs() << llvm::formatv("kvc-run: called @{0} with {1} arguments, "
                                "wrote {2} results to {3}\n",
                                options.entry, tensors.size(),
                                outputs.size(), options.outputs);
  return 0;
}
