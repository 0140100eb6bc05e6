//===- JitFunction.h - a compiled function on runtime caches ----*- C++ -*-===//
//
// Compiles one function of a module with kvc-cpu-pipeline, JITs it, and
// calls it on host tensors and runtime cache bindings: the engine under
// `kvc-run --invoke` and the Python package's `kvc.compile`. Arguments and
// results are described by their `kvc.name` (frontends put the framework's
// names there), element type and shape; `!kvc.cache` arguments by layer,
// geometry and encoding, so a caller can build a runtime cache that fits.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_EXECUTIONENGINE_JITFUNCTION_H
#define KVC_EXECUTIONENGINE_JITFUNCTION_H

#include "kvc/Numerics/Encoding.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlir {
class ExecutionEngine;
class PassManager;
} // namespace mlir

struct kvc_rt_binding;

namespace kvc::exec {

/// The safetensors dtype names ("F32", "I64", "BOOL", ...) are the element
/// type names used here.
size_t dtypeSize(const std::string &dtype);
/// The dtype that holds `type` bit for bit, or "" if none.
std::string dtypeOf(mlir::Type type);

/// A dense row-major host tensor: in a 64-byte aligned buffer it owns, or a
/// view of a caller's buffer (which must outlive it).
class HostTensor {
public:
  HostTensor(std::vector<int64_t> shape, std::string dtype);
  static HostTensor view(std::vector<int64_t> shape, std::string dtype,
                         void *data);
  const std::vector<int64_t> &shape() const { return dims; }
  const std::string &dtype() const { return elementDtype; }
  size_t bytes() const { return byteSize; }
  uint8_t *data() { return aligned; }
  const uint8_t *data() const { return aligned; }
  int64_t numElements() const;

private:
  std::vector<int64_t> dims;
  std::string elementDtype;
  size_t byteSize = 0;
  std::unique_ptr<uint8_t[]> storage;
  uint8_t *aligned = nullptr;
};

/// One argument or result of the compiled function.
struct ValueInfo {
  enum class Kind { Tensor, Cache };
  Kind kind = Kind::Tensor;
  /// `kvc.name`, or `arg<i>` / `result<i>`.
  std::string name;
  /// Tensors: dtype and shape, -1 for a dynamic dim.
  std::string dtype;
  std::vector<int64_t> shape;
  /// Caches: the runtime layer (`kvc.layer`, else the cache's position
  /// among the cache arguments), batch (-1 dynamic), geometry, encoding.
  unsigned layer = 0;
  int64_t batch = -1;
  unsigned kvHeads = 0, headDim = 0;
  ::kvc::numerics::CacheEncoding encoding;
  /// The encoding of each KV head: all `encoding` unless kvc-select-bitwidths
  /// chose per-head encodings (`kvc.head_encodings`).
  std::vector<::kvc::numerics::CacheEncoding> headEncodings;
  bool hasPerHeadEncodings() const {
    for (const auto &head : headEncodings)
      if (!(head == encoding))
        return true;
    return false;
  }
  /// The cache stores Hadamard-rotated keys (`kvc.rotated_keys`, set by
  /// kvc-rotate-keys): keys appended from outside must be rotated too.
  bool rotatedKeys = false;
};

class JitFunction {
public:
  ~JitFunction();

  /// Lowers `module` in place with kvc-cpu-pipeline and JITs `entry`.
  /// Signature problems and pipeline failures are emitted as diagnostics on
  /// the module's context; the returned error then says compilation failed.
  /// `configure` may set up the pass manager (instrumentation, CL options).
  /// `append`, `keyReads` and `valueReads` are kvc-cpu-pipeline's options:
  /// who writes appended tokens, how attention reads keys and takes values.
  /// With `emulatedGPU` (kvc-gpu-pipeline options, e.g. "split-tokens=128")
  /// the function is lowered by kvc-gpu-pipeline instead, its kernels as
  /// LLVM bitcode that the GPU emulator (kvc/GPUEmulator/Emulator.h) runs on
  /// the host: appends by the generated kernel, key-product=mma where
  /// `keyReads` is "parts" and value-product=mma where `valueReads` is
  /// "f16" (the same roundings), page-tokens and format set here.
  static llvm::Expected<std::unique_ptr<JitFunction>> compile(
      mlir::ModuleOp module, llvm::StringRef entry, unsigned pageTokens,
      llvm::function_ref<mlir::LogicalResult(mlir::PassManager &)> configure =
          nullptr,
      llvm::StringRef append = "runtime", llvm::StringRef keyReads = "rows",
      llvm::StringRef valueReads = "f32",
      const std::optional<std::string> &emulatedGPU = std::nullopt);

  const std::vector<ValueInfo> &arguments() const { return args; }
  /// Tensor results (static shapes); cache results are the argument
  /// bindings, updated in place, and are not listed.
  const std::vector<ValueInfo> &results() const { return tensorResults; }
  unsigned pageTokens() const { return pageSize; }

  /// Calls the function. `tensors` holds one tensor per tensor argument and
  /// `caches` one binding per cache argument, both in argument order. A
  /// tensor must have the argument's dtype and fit its shape; a binding's
  /// first runtime error is returned (the binding keeps it, see
  /// kvc_rt_binding_status); for the GPU emulator, its first error.
  llvm::Expected<std::vector<HostTensor>>
  call(llvm::ArrayRef<const HostTensor *> tensors,
       llvm::ArrayRef<kvc_rt_binding *> caches);

private:
  JitFunction() = default;
  std::unique_ptr<mlir::ExecutionEngine> engine;
  std::string symbol;
  std::vector<ValueInfo> args, tensorResults;
  unsigned numCacheResults = 0;
  unsigned pageSize = 64;
  /// Compiled for the GPU emulator: calls report its errors.
  bool emulatedGPU = false;
};

} // namespace kvc::exec

#endif // KVC_EXECUTIONENGINE_JITFUNCTION_H
