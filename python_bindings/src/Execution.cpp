//===- Execution.cpp - kvc._kvc: compiled functions on CPU caches ---------===//
//
// kvc.compile(ir, entry) lowers a function with kvc-cpu-pipeline and JITs it
// (kvc::exec::JitFunction). Calling it takes a dict of numpy arrays by
// argument name and, for `!kvc.cache` arguments, a CPUCache and the batch's
// sequences: each cache argument is bound to its layer of that cache, so a
// Python loop can run a whole decoder step after step with compressed
// caches that persist between calls.
//
//===----------------------------------------------------------------------===//

#include "CPUCache.h"

#include "kvc/ExecutionEngine/JitFunction.h"
#include "kvc/Numerics/FP8.h"
#include "kvc_runtime_binding.h"

#include "Geometry.h" // runtime/lib: numerics <-> C encodings

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <pybind11/stl.h>

#include <cstring>
#include <map>
#include <optional>

namespace py = pybind11;
using ::kvc::exec::HostTensor;
using ::kvc::exec::JitFunction;
using ::kvc::exec::ValueInfo;
using kvc::python::CPUCache;
namespace num = ::kvc::numerics;

namespace {

/// The spec-language form of a side encoding (`q2:channel:g32`, `fp16`).
std::string sideSpec(const num::SideEncoding &side) {
  if (side.isFP8())
    return std::string("fp8:") + num::fp8FormatName(side.fp8);
  if (!side.isQuant())
    return "fp16";
  return "q" + std::to_string(side.quant.bits) + ":" +
         (side.quant.axis == num::QuantAxis::Channel ? "channel" : "token") +
         ":g" + std::to_string(side.quant.group);
}

/// dtype name <-> numpy dtype. BF16 has no numpy type.
py::dtype numpyDtype(const std::string &dtype) {
  static const std::map<std::string, const char *> names = {
      {"F32", "float32"}, {"F16", "float16"}, {"F64", "float64"},
      {"I64", "int64"},   {"I32", "int32"},   {"I16", "int16"},
      {"I8", "int8"},     {"BOOL", "bool"}};
  auto it = names.find(dtype);
  if (it == names.end())
    throw py::type_error("element type " + dtype + " has no numpy dtype");
  return py::dtype(it->second);
}

py::dict describe(const ValueInfo &info) {
  py::dict d;
  d["name"] = info.name;
  if (info.kind == ValueInfo::Kind::Cache) {
    d["kind"] = "cache";
    d["layer"] = info.layer;
    d["batch"] = info.batch < 0 ? py::object(py::none()) : py::int_(info.batch);
    d["kv_heads"] = info.kvHeads;
    d["head_dim"] = info.headDim;
    d["key"] = sideSpec(info.encoding.key);
    d["value"] = sideSpec(info.encoding.value);
    d["residual"] = info.encoding.residual;
    // Per-KV-head encodings (the type's key/value above are the widest).
    if (info.hasPerHeadEncodings()) {
      py::list heads;
      for (const auto &head : info.headEncodings)
        heads.append(py::make_tuple(sideSpec(head.key), sideSpec(head.value),
                                    head.residual));
      d["head_encodings"] = heads;
    }
    d["rotated_keys"] = info.rotatedKeys;
    return d;
  }
  d["kind"] = "tensor";
  d["dtype"] = info.dtype;
  py::list shape;
  for (int64_t dim : info.shape)
    shape.append(dim < 0 ? py::object(py::none()) : py::int_(dim));
  d["shape"] = shape;
  return d;
}

class CompiledFunction {
public:
  CompiledFunction(const std::string &ir, const std::string &entry,
                   unsigned pageTokens, bool allowUnregistered,
                   const std::optional<std::string> &gpuEmulator,
                   const std::string &keyReads, const std::string &valueReads) {
    mlir::MLIRContext context(kvc::python::dialectRegistry());
    context.allowUnregisteredDialects(allowUnregistered);
    // Located messages, not IR dumps of the op (kvc-opt style).
    context.printOpOnDiagnostic(false);
    std::string diagnostics;
    llvm::raw_string_ostream diagStream(diagnostics);
    llvm::SourceMgr sourceMgr;
    sourceMgr.AddNewSourceBuffer(
        llvm::MemoryBuffer::getMemBufferCopy(ir, "<python>"), llvm::SMLoc());
    mlir::SourceMgrDiagnosticHandler handler(sourceMgr, &context, diagStream);
    std::string error;
    {
      py::gil_scoped_release release;
      mlir::OwningOpRef<mlir::ModuleOp> module =
          mlir::parseSourceFile<mlir::ModuleOp>(sourceMgr, &context);
      if (module) {
        auto compiled =
            JitFunction::compile(*module, entry, pageTokens, nullptr, "runtime",
                                 keyReads, valueReads, gpuEmulator);
        if (compiled)
          function = std::move(*compiled);
        else
          error = llvm::toString(compiled.takeError());
      }
    }
    if (!function) {
      py::object compileError =
          py::module_::import("kvc._kvc").attr("CompileError");
      PyErr_SetString(compileError.ptr(),
                      (diagnostics + (error.empty() ? "" : error + "\n"))
                          .c_str());
      throw py::error_already_set();
    }
  }

  py::list arguments() const {
    py::list list;
    for (const ValueInfo &info : function->arguments())
      list.append(describe(info));
    return list;
  }
  py::list results() const {
    py::list list;
    for (const ValueInfo &info : function->results())
      list.append(describe(info));
    return list;
  }

  /// One runtime encoding per layer 0..L-1, from the cache arguments.
  std::vector<kvc_rt_encoding> cacheLayers(unsigned &kvHeads,
                                           unsigned &headDim,
                                           unsigned &encodingsPerLayer) const {
    std::map<unsigned, const ValueInfo *> byLayer;
    for (const ValueInfo &info : function->arguments()) {
      if (info.kind != ValueInfo::Kind::Cache)
        continue;
      if (!byLayer.emplace(info.layer, &info).second)
        throw py::value_error("two cache arguments claim layer " +
                              std::to_string(info.layer));
      if (byLayer.size() == 1) {
        kvHeads = info.kvHeads;
        headDim = info.headDim;
      } else if (info.kvHeads != kvHeads || info.headDim != headDim) {
        throw py::value_error(
            "cache argument '" + info.name +
            "' has another geometry than the first; one runtime cache "
            "holds one (kv_heads, head_dim)");
      }
    }
    if (byLayer.empty())
      throw py::value_error("the function takes no cache");
    // One encoding per layer, or per (layer, KV head) if any cache has
    // per-head encodings.
    bool perHead = llvm::any_of(byLayer, [](const auto &entry) {
      return entry.second->hasPerHeadEncodings();
    });
    std::vector<kvc_rt_encoding> encodings;
    unsigned expectedLayer = 0;
    for (auto [layer, info] : byLayer) {
      if (layer != expectedLayer++)
        throw py::value_error("the cache arguments' layers are not 0.." +
                              std::to_string(byLayer.size() - 1));
      if (perHead)
        for (const auto &head : info->headEncodings)
          encodings.push_back(::kvc::rt::toCEncoding(head));
      else
        encodings.push_back(::kvc::rt::toCEncoding(info->encoding));
    }
    encodingsPerLayer = perHead ? kvHeads : 1;
    return encodings;
  }

  CPUCache newCache(unsigned maxSequences, unsigned maxTokens,
                    unsigned pagesPerLayer) const {
    unsigned kvHeads = 0, headDim = 0, encodingsPerLayer = 1;
    std::vector<kvc_rt_encoding> encodings =
        cacheLayers(kvHeads, headDim, encodingsPerLayer);
    return CPUCache(std::move(encodings), encodingsPerLayer, kvHeads, headDim,
                    function->pageTokens(), maxSequences, maxTokens,
                    pagesPerLayer);
  }

  py::dict call(const py::dict &inputs, CPUCache *cache,
                const std::vector<kvc_rt_seq> &sequences) {
    std::vector<HostTensor> tensors;
    std::vector<py::array> keepAlive;
    std::vector<kvc_rt_binding *> bindings;
    struct BindingsGuard {
      std::vector<kvc_rt_binding *> &bindings;
      ~BindingsGuard() {
        for (kvc_rt_binding *binding : bindings)
          kvc_rt_binding_destroy(binding);
      }
    } guard{bindings};
    size_t used = 0;
    for (const ValueInfo &arg : function->arguments()) {
      if (arg.kind == ValueInfo::Kind::Cache) {
        if (!cache)
          throw py::value_error("argument '" + arg.name +
                                "' is a cache: pass cache= and sequences=");
        if (arg.batch >= 0 && size_t(arg.batch) != sequences.size())
          throw py::value_error(
              "argument '" + arg.name + "' is a cache of batch " +
              std::to_string(arg.batch) + ", got " +
              std::to_string(sequences.size()) + " sequences");
        // Before anything runs: a cache laid out for other encodings would
        // fail inside the call, after earlier layers appended.
        std::vector<kvc_rt_encoding> expected;
        for (const auto &head : arg.headEncodings)
          expected.push_back(::kvc::rt::toCEncoding(head));
        kvc_rt_status layout = kvc_rt_cache_check_layer_heads(
            cache->handle(), arg.layer, expected.data(),
            uint32_t(expected.size()), arg.kvHeads, arg.headDim,
            function->pageTokens());
        if (layout != KVC_RT_OK)
          throw std::runtime_error(
              "argument '" + arg.name + "' (layer " +
              std::to_string(arg.layer) + ", key " +
              sideSpec(arg.encoding.key) + ", value " +
              sideSpec(arg.encoding.value) + ", residual " +
              std::to_string(arg.encoding.residual) +
              (arg.hasPerHeadEncodings() ? ", per-head encodings" : "") +
              ") does not fit the cache: " + kvc_rt_status_name(layout) +
              ": " + kvc_rt_last_error());
        kvc_rt_binding *binding = nullptr;
        kvc::python::checkStatus(
            kvc_rt_binding_create(cache->handle(), arg.layer,
                                  sequences.data(),
                                  uint32_t(sequences.size()), &binding),
            "kvc_rt_binding_create");
        bindings.push_back(binding);
        continue;
      }
      if (!inputs.contains(arg.name))
        throw py::key_error("no input '" + arg.name + "'");
      ++used;
      py::object value = inputs[py::str(arg.name)];
      if (!py::isinstance<py::array>(value))
        throw py::type_error("input '" + arg.name + "' must be a numpy array");
      py::array array = py::reinterpret_borrow<py::array>(value);
      // No silent conversions: a wrong dtype is the caller's bug.
      if (!array.dtype().equal(numpyDtype(arg.dtype)))
        throw py::type_error("input '" + arg.name + "' is " +
                             std::string(py::str(array.dtype())) +
                             ", the function takes " +
                             std::string(py::str(numpyDtype(arg.dtype))));
      array = py::array::ensure(array, py::array::c_style);
      keepAlive.push_back(array);
      std::vector<int64_t> shape(array.shape(), array.shape() + array.ndim());
      tensors.push_back(HostTensor::view(
          shape, arg.dtype, const_cast<void *>(array.data())));
    }
    if (used != inputs.size())
      for (auto item : inputs) {
        std::string name = py::str(item.first);
        bool known = false;
        for (const ValueInfo &arg : function->arguments())
          known |= arg.name == name && arg.kind == ValueInfo::Kind::Tensor;
        if (!known)
          throw py::key_error("the function has no tensor argument '" + name +
                              "'");
      }
    std::vector<const HostTensor *> pointers;
    for (const HostTensor &tensor : tensors)
      pointers.push_back(&tensor);
    std::optional<llvm::Expected<std::vector<HostTensor>>> called;
    {
      py::gil_scoped_release release;
      called.emplace(function->call(pointers, bindings));
    }
    llvm::Expected<std::vector<HostTensor>> &outputs = *called;
    if (!outputs)
      throw std::runtime_error(llvm::toString(outputs.takeError()));
    py::dict results;
    for (size_t i = 0; i < outputs->size(); ++i) {
      const HostTensor &tensor = (*outputs)[i];
      py::array array(numpyDtype(tensor.dtype()), tensor.shape());
      std::memcpy(array.mutable_data(), tensor.data(), tensor.bytes());
      results[py::str(function->results()[i].name)] = array;
    }
    return results;
  }

private:
  std::unique_ptr<JitFunction> function;
};

} // namespace

namespace kvc::python {
void bindExecution(py::module_ &m) {
  py::class_<CompiledFunction>(
      m, "Function",
      "A function compiled by kvc.compile: call it with a dict of numpy "
      "arrays (and a CPUCache for its cache arguments).")
      .def_property_readonly("arguments", &CompiledFunction::arguments,
                             "One dict per argument: name, kind ('tensor': "
                             "dtype, shape with None for dynamic dims; "
                             "'cache': layer, batch, kv_heads, head_dim, "
                             "key, value, residual, rotated_keys: keys "
                             "appended from outside must be rotated with "
                             "kvc.hadamard_rotate).")
      .def_property_readonly("results", &CompiledFunction::results,
                             "The tensor results (name, dtype, shape).")
      .def("new_cache", &CompiledFunction::newCache,
           py::arg("max_sequences") = 1, py::arg("max_tokens") = 4096,
           py::arg("pages_per_layer") = 0,
           "A CPUCache whose layers have the encodings and geometry of the "
           "cache arguments and whose pages have the compiled page size.")
      .def("__call__", &CompiledFunction::call, py::arg("inputs"),
           py::arg("cache") = nullptr,
           py::arg("sequences") = std::vector<kvc_rt_seq>(),
           "Call with inputs {argument name: numpy array of its dtype}; "
           "cache arguments are bound to their layer of `cache` for the "
           "batch `sequences` and updated in place. Returns {result name: "
           "array}.");
  m.def(
      "compile",
      [](const std::string &ir, const std::string &entry, unsigned pageTokens,
         bool allowUnregistered, std::optional<std::string> gpuEmulator,
         const std::string &keyReads, const std::string &valueReads) {
        return std::make_unique<CompiledFunction>(
            ir, entry, pageTokens, allowUnregistered, gpuEmulator, keyReads,
            valueReads);
      },
      py::arg("ir"), py::arg("entry") = "main", py::arg("page_tokens") = 64,
      py::arg("allow_unregistered_dialects") = false,
      py::arg("gpu_emulator") = py::none(), py::arg("key_reads") = "rows",
      py::arg("value_reads") = "f32",
      "Compile function `entry` of IR text for the CPU (kvc-cpu-pipeline, "
      "JIT). With gpu_emulator (a string of kvc-gpu-pipeline options, e.g. "
      "'' or 'split-tokens=128') compile it for the GPU instead "
      "(kvc-gpu-pipeline) and run its kernels in kvc's GPU emulator on the "
      "CPU cache: a check of the generated kernels without a GPU. "
      "key_reads='parts' and value_reads='f16' select the pipelines' "
      "fp16 products (on the GPU, the tensor-core passes), as kvc-run's "
      "--key-reads and --value-reads do. Errors "
      "raise CompileError with the located diagnostics; the emulator's "
      "errors at a call raise RuntimeError.");
}
} // namespace kvc::python
