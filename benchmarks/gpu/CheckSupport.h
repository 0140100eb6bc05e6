//===- CheckSupport.h - What the GPU check drivers share --------*- C++ -*-===//
//
// What attention_check.cpp, append_check.cpp and attention_bench.cpp share:
// side specs and manifest lines, --only, per-variant seeds, error text, the
// device preamble, query / output buffers, the entry points and the
// summary. Like the drivers, it compiles twice: for the GPU, and with
// KVC_ATTENTION_HOST=1 for the host dry run on CPU caches (no CUDA runtime
// there).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_BENCHMARKS_GPU_CHECKSUPPORT_H
#define KVC_BENCHMARKS_GPU_CHECKSUPPORT_H

// The build modes, for every driver (each includes this header first):
// KVC_ATTENTION_HOST=1 runs on CPU caches, KVC_ATTENTION_EMULATED=1 (with
// it) runs the GPU code's kernels in kvc's emulator; both 0 on a GPU.
#ifndef KVC_ATTENTION_HOST
#define KVC_ATTENTION_HOST 0
#endif
#ifndef KVC_ATTENTION_EMULATED
#define KVC_ATTENTION_EMULATED 0
#endif

#include "kvc_runtime.h"
#include "kvc_runtime_binding.h"
#include "kvc_runtime_gpu.h"

#include <dlfcn.h>
#if !KVC_ATTENTION_HOST
#include <cuda_runtime.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace kvc::gpucheck {

#if KVC_ATTENTION_HOST
inline constexpr uint32_t kBackend = KVC_RT_BACKEND_CPU;
#else
inline constexpr uint32_t kBackend = KVC_RT_BACKEND_CUDA;
#endif

using CacheOwner =
    std::unique_ptr<kvc_rt_cache, kvc_rt_status (*)(kvc_rt_cache *)>;
using BindingOwner =
    std::unique_ptr<kvc_rt_binding, void (*)(kvc_rt_binding *)>;

/// `what: <the runtime's last error>`.
inline std::string runtimeError(const char *what) {
  return std::string(what) + ": " + kvc_rt_last_error();
}

/// Whether manifest field `field` is `<name>=<digits>`; if so, the number
/// goes to `value` (the stages fields: key_stages=N, value_stages=N).
inline bool countField(const std::string &field, const std::string &name,
                       uint32_t &value) {
  const size_t at = name.size() + 1;
  if (field.compare(0, at, name + "=") != 0 || field.size() == at ||
      field.find_first_not_of("0123456789", at) != std::string::npos)
    return false;
  value = uint32_t(std::strtoul(field.c_str() + at, nullptr, 10));
  return true;
}

/// The kvc-gpu-pipeline options a manifest line of attention_variants.py
/// may carry beside its shape and encoding.
struct PipelineFields {
  /// key_product=mma: the kernels take the key dot products on tensor
  /// cores, from the queries and dequantized keys rounded to fp16.
  bool tensorCoreKeys = false;
  /// value_product=mma: the kernels weigh values rounded to fp16 on tensor
  /// cores.
  bool tensorCoreValues = false;
  /// l2_prefetch=lines|bulk: the split kernels prefetch their page blocks
  /// into L2 (the emulated check checks each prefetch against the cache).
  std::string l2Prefetch = "none";
  /// key_stages=N: the tensor-core key pass copies its key units into N
  /// shared-memory stages with cp.async (0: none; the results are the
  /// same).
  uint32_t keyStages = 0;
  /// value_stages=N: the same for the tensor-core value pass.
  uint32_t valueStages = 0;
  /// combine=fused: the split kernels merge the splits themselves (their
  /// last block of each sequence and KV head; the results are the same),
  /// counting in kvc_rt_mlir_gpu_counters' counters, which they must
  /// leave at zero.
  bool fusedCombine = false;
  /// mma_codes=normal: the tensor-core passes read the codes whose scales
  /// they fold as fp16 normals, not subnormals (the results are the same).
  bool normalCodes = false;
};

/// Whether manifest field `field` is one of PipelineFields'; if so, its
/// value goes to `fields`.
inline bool pipelineField(const std::string &field, PipelineFields &fields) {
  if (field == "key_product=mma" || field == "key_product=fma")
    fields.tensorCoreKeys = field == "key_product=mma";
  else if (field == "value_product=mma" || field == "value_product=fma")
    fields.tensorCoreValues = field == "value_product=mma";
  else if (field == "l2_prefetch=lines" || field == "l2_prefetch=bulk" ||
           field == "l2_prefetch=none")
    fields.l2Prefetch = field.substr(12);
  else if (field == "combine=fused" || field == "combine=kernel")
    fields.fusedCombine = field == "combine=fused";
  else if (field == "mma_codes=normal" || field == "mma_codes=subnormal")
    fields.normalCodes = field == "mma_codes=normal";
  else
    return countField(field, "key_stages", fields.keyStages) ||
           countField(field, "value_stages", fields.valueStages);
  return true;
}

/// FNV-1a: per-variant seeds that do not depend on which variants run.
inline uint64_t hashName(const std::string &name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name)
    h = (h ^ c) * 1099511628211ull;
  return h;
}

/// A fresh seed for the run (printed, so that --seed reproduces it).
inline uint64_t randomSeed() {
  return (uint64_t(std::random_device{}()) << 32) | std::random_device{}();
}

inline std::vector<std::string> split(const std::string &text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, separator);)
    parts.push_back(part);
  return parts;
}

/// `q<bits>:<channel|token>:g<group>`, `fp16` or `fp8:<e4m3|e5m2>`.
inline bool parseSide(const std::string &spec, kvc_rt_side_encoding &side) {
  side = kvc_rt_side_encoding{};
  if (spec == "fp16") {
    side.kind = KVC_RT_SIDE_FP16;
    return true;
  }
  if (spec == "fp8:e4m3" || spec == "fp8:e5m2") {
    side.kind = KVC_RT_SIDE_FP8;
    side.fp8_format = spec == "fp8:e4m3" ? KVC_RT_FP8_E4M3 : KVC_RT_FP8_E5M2;
    return true;
  }
  unsigned bits = 0, group = 0;
  char axis[16] = {0};
  int consumed = 0;
  if (std::sscanf(spec.c_str(), "q%u:%15[a-z]:g%u%n", &bits, axis, &group,
                  &consumed) != 3 ||
      size_t(consumed) != spec.size())
    return false;
  if (std::strcmp(axis, "channel") && std::strcmp(axis, "token"))
    return false;
  side.kind = KVC_RT_SIDE_QUANT;
  side.bits = bits;
  side.axis =
      std::strcmp(axis, "channel") ? KVC_RT_AXIS_TOKEN : KVC_RT_AXIS_CHANNEL;
  side.group = group;
  return true;
}

/// Reads a manifest, one variant a line (blank lines skipped), each parsed
/// by `parse` (an error message, or ""). Errors go to stderr, prefixed with
/// `program`.
template <typename Variant>
bool readManifest(const char *program, const std::string &path,
                  std::vector<Variant> &variants,
                  std::string (*parse)(const std::string &, Variant &)) {
  std::ifstream file(path);
  if (!file) {
    std::fprintf(stderr, "%s: cannot read %s\n", program, path.c_str());
    return false;
  }
  int lineNumber = 0;
  for (std::string line; std::getline(file, line);) {
    ++lineNumber;
    if (line.find_first_not_of(" \t") == std::string::npos)
      continue;
    Variant v;
    std::string error = parse(line, v);
    if (!error.empty()) {
      std::fprintf(stderr, "%s: %s:%d: %s\n", program, path.c_str(), lineNumber,
                   error.c_str());
      return false;
    }
    variants.push_back(std::move(v));
  }
  return true;
}

/// Keeps the variants whose names contain one of the strings of --only (all
/// of them when it is empty; a string ending in '$' must end the name: a
/// variant's name is a prefix of its l2-prefetch twin's); false, after a
/// message, when none is left.
template <typename Variant>
bool selectVariants(const char *program, std::vector<Variant> &variants,
                    const std::vector<std::string> &only) {
  auto matches = [](const std::string &name, const std::string &part) {
    if (part.empty() || part.back() != '$')
      return name.find(part) != std::string::npos;
    const std::string tail = part.substr(0, part.size() - 1);
    return name.size() >= tail.size() &&
           name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
  };
  auto unselected = [&](const Variant &v) {
    return !only.empty() &&
           std::none_of(only.begin(), only.end(), [&](const std::string &part) {
             return matches(v.name, part);
           });
  };
  variants.erase(std::remove_if(variants.begin(), variants.end(), unselected),
                 variants.end());
  if (variants.empty()) {
    std::fprintf(stderr, "%s: no variant selected\n", program);
    return false;
  }
  return true;
}

/// The first error of the runtime's mgpu* functions, or "".
inline std::string gpuRecord() {
#if KVC_ATTENTION_HOST
  return "";
#else
  const char *message = nullptr;
  int32_t code = kvc_rt_gpu_last_error(&message);
  if (code == 0)
    return "";
  return "mgpu error " + std::to_string(code) + ": " + (message ? message : "");
#endif
}

#if KVC_ATTENTION_HOST
inline std::string deviceProblem(const char *) { return ""; }
#else
/// `what: <name>: <description>` for a CUDA error, "" for cudaSuccess.
inline std::string cudaProblem(const char *what, cudaError_t err) {
  if (err == cudaSuccess)
    return "";
  return std::string(what) + ": " + cudaGetErrorName(err) + ": " +
         cudaGetErrorString(err);
}

/// The pending CUDA error after `what`, or "".
inline std::string deviceProblem(const char *what) {
  return cudaProblem(what, cudaGetLastError());
}
#endif

#if KVC_ATTENTION_HOST
/// Buffers of compiled calls (f32 queries and outputs, f32 or f16 masks):
/// host memory in the dry run.
template <typename T> struct DeviceBuffer {
  std::vector<T> host;
  T *ptr = nullptr;
  bool allocate(size_t n) {
    host.resize(n);
    ptr = host.data();
    return true;
  }
  bool upload(const std::vector<T> &from) {
    std::copy(from.begin(), from.end(), host.begin());
    return true;
  }
  bool poison() { // NaN until written
    std::memset(ptr, 0xFF, host.size() * sizeof(T));
    return true;
  }
  bool clear() {
    std::memset(ptr, 0, host.size() * sizeof(T));
    return true;
  }
  bool download(std::vector<T> &to) const {
    to = host;
    return true;
  }
};
#else
/// Buffers of compiled calls (f32 queries and outputs, f32 or f16 masks),
/// in device memory. Copies and memsets are synchronous: complete before a
/// call on any stream.
template <typename T> struct DeviceBuffer {
  T *ptr = nullptr;
  size_t elements = 0;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  ~DeviceBuffer() { cudaFree(ptr); }
  bool allocate(size_t n) {
    elements = n;
    return cudaMalloc(&ptr, n * sizeof(T)) == cudaSuccess;
  }
  bool upload(const std::vector<T> &from) {
    return cudaMemcpy(ptr, from.data(), elements * sizeof(T),
                      cudaMemcpyHostToDevice) == cudaSuccess &&
           cudaDeviceSynchronize() == cudaSuccess;
  }
  bool poison() { return fill(0xFF); } // NaN until written
  bool clear() { return fill(0); }
  bool fill(int byte) {
    return cudaMemset(ptr, byte, elements * sizeof(T)) == cudaSuccess &&
           cudaDeviceSynchronize() == cudaSuccess;
  }
  bool download(std::vector<T> &to) const {
    to.resize(elements);
    return cudaMemcpy(to.data(), ptr, elements * sizeof(T),
                      cudaMemcpyDeviceToHost) == cudaSuccess;
  }
};
#endif
using FloatBuffer = DeviceBuffer<float>;

/// Clears what a failed call left behind; true when a sticky error (an
/// illegal address) poisoned the CUDA context, so that every later call
/// would fail too.
inline bool contextBroken() {
#if KVC_ATTENTION_HOST
  return false;
#else
  kvc_rt_gpu_clear_error();
  cudaGetLastError();
  return cudaDeviceSynchronize() != cudaSuccess;
#endif
}

/// Prints the device ("host dry run: <dryRun>" in the dry run) and checks
/// the kernel modules, which the objects' constructors loaded. Returns the
/// exit code when the check cannot go on (77 without a usable CUDA device;
/// 1 when a module failed to load, after a summary that fails all `rows`),
/// else 0.
inline int startDevice(const char *program, [[maybe_unused]] const char *dryRun,
                       size_t rows) {
#if KVC_ATTENTION_HOST
  std::printf("host dry run: %s\n", dryRun);
#else
  if (kvc_rt_backend_available(KVC_RT_BACKEND_CUDA, 0) != KVC_RT_OK) {
    std::printf("%s: no usable CUDA device: %s\n", program,
                kvc_rt_last_error());
    return 77;
  }
  cudaDeviceProp properties;
  if (cudaGetDeviceProperties(&properties, 0) == cudaSuccess)
    std::printf("device: %s (sm_%d%d)\n", properties.name, properties.major,
                properties.minor);
#endif
  std::string loadProblem = gpuRecord();
  if (!loadProblem.empty()) {
    std::printf("%s: loading the kernels failed: %s\n", program,
                loadProblem.c_str());
    std::printf("0 passed, %zu failed\n", rows);
    return 1;
  }
  return 0;
}

/// `_mlir_ciface_<name>`, found by name (the programs export their
/// symbols), or nullptr when the variant is not linked in.
template <typename Entry> Entry findEntry(const std::string &name) {
  return reinterpret_cast<Entry>(
      dlsym(RTLD_DEFAULT, ("_mlir_ciface_" + name).c_str()));
}

/// Why a variant is not run, or "" when it can be.
inline std::string notRunReason(const std::string &name, bool linked,
                                bool broken) {
  if (broken)
    return "not run: the CUDA context failed earlier";
  if (!linked)
    return "_mlir_ciface_" + name + " is not linked in (rebuild the artifacts)";
  return "";
}

/// Prints the time since `start` and "N passed, N failed"; the exit code.
inline int finish(std::chrono::steady_clock::time_point start, int passed,
                  int failed) {
  std::printf("time: %.1f s\n", std::chrono::duration<double>(
                                    std::chrono::steady_clock::now() - start)
                                    .count());
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

/// A sequence length argument (1 .. 2^24 tokens, decimal digits only);
/// false for anything else. (The GPU machine has no LLVM, so the drivers
/// parse their few arguments themselves.)
inline bool parseLength(const std::string &arg, std::vector<uint32_t> &out) {
  if (arg.empty() || arg.size() > 9 ||
      arg.find_first_not_of("0123456789") != std::string::npos)
    return false;
  const unsigned long S = std::strtoul(arg.c_str(), nullptr, 10);
  if (S == 0 || S > (1ul << 24))
    return false;
  out.push_back(uint32_t(S));
  return true;
}

/// A string as JSON text (control characters become spaces).
inline std::string jsonString(const std::string &text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\')
      quoted += std::string("\\") + c;
    else if (static_cast<unsigned char>(c) < 0x20)
      quoted += ' ';
    else
      quoted += c;
  }
  return quoted + "\"";
}

/// A number, or null for NaN (JSON has no NaN).
inline std::string jsonNumber(double x) {
  if (!std::isfinite(x))
    return "null";
  char text[64];
  std::snprintf(text, sizeof text, "%.6g", x);
  return text;
}

} // namespace kvc::gpucheck

#endif // KVC_BENCHMARKS_GPU_CHECKSUPPORT_H
