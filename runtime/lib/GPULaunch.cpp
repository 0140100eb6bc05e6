//===- GPULaunch.cpp - The MLIR CUDA runtime wrappers, on the driver API --===//
//
// `gpu-to-llvm` lowers kernel launches and gpu.alloc / dealloc / memcpy /
// memset / wait to calls of the mgpu* functions of upstream's
// mlir/lib/ExecutionEngine/CudaRuntimeWrappers.cpp. Debian ships no
// libmlir_cuda_runtime, so the runtime defines them (kvc_runtime_gpu.h),
// with the signatures MLIR 22's gpu-to-llvm emits and upstream's behaviour:
// the primary context of the default device is retained once and pushed for
// the duration of each call.
//
// Two deliberate differences:
//  - Errors are printed *and* recorded (the first one, process-wide), and
//    kernel launches are skipped while one is recorded, so a host can tell
//    that results are garbage (kvc_rt_gpu_last_error).
//  - The driver is not linked: its entry points are looked up on first use
//    through the CUDA runtime (cudaGetDriverEntryPointByVersion), so that
//    libkvc_runtime.so -- which CPU-only programs load too -- does not need
//    libcuda.so.1 on machines without a GPU driver.
//
//===----------------------------------------------------------------------===//

#include "kvc_runtime_gpu.h"

#include <cuda.h>
#include <cuda_runtime_api.h>

#include <atomic>
#include <climits>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>

namespace {

//===------------------------------ Driver --------------------------------===//

// Every driver function used below. Names are the API names ("cuMemAlloc");
// cuda.h maps some of them to versioned symbols (cuMemAlloc_v2), which is
// why they are looked up by name and version instead of with dlsym.
#define KVC_DRIVER_FUNCTIONS(X)                                                \
  X(cuGetErrorName)                                                            \
  X(cuGetErrorString)                                                          \
  X(cuInit)                                                                    \
  X(cuDeviceGet)                                                               \
  X(cuDeviceGetAttribute)                                                      \
  X(cuDevicePrimaryCtxRetain)                                                  \
  X(cuCtxPushCurrent)                                                          \
  X(cuCtxPopCurrent)                                                           \
  X(cuModuleLoadData)                                                          \
  X(cuModuleLoadDataEx)                                                        \
  X(cuModuleUnload)                                                            \
  X(cuModuleGetFunction)                                                       \
  X(cuFuncGetAttribute)                                                        \
  X(cuFuncSetAttribute)                                                        \
  X(cuLaunchKernel)                                                            \
  X(cuLaunchKernelEx)                                                          \
  X(cuStreamCreate)                                                            \
  X(cuStreamDestroy)                                                           \
  X(cuStreamSynchronize)                                                       \
  X(cuStreamWaitEvent)                                                         \
  X(cuEventCreate)                                                             \
  X(cuEventDestroy)                                                            \
  X(cuEventSynchronize)                                                        \
  X(cuEventRecord)                                                             \
  X(cuMemAlloc)                                                                \
  X(cuMemAllocManaged)                                                         \
  X(cuMemFree)                                                                 \
  X(cuMemcpyAsync)                                                             \
  X(cuMemsetD32Async)                                                          \
  X(cuMemsetD16Async)

/// The driver's entry points, resolved once. `available` is false when the
/// driver cannot be loaded or cuInit fails; `failure` / `failureMessage`
/// then say why.
struct Driver {
#define KVC_DECLARE_DRIVER_FUNCTION(name) decltype(&::name) name##_ = nullptr;
  KVC_DRIVER_FUNCTIONS(KVC_DECLARE_DRIVER_FUNCTION)
#undef KVC_DECLARE_DRIVER_FUNCTION
  bool available = false;
  CUresult failure = CUDA_SUCCESS;
  std::string failureMessage;
};

const Driver &driver() {
  // Never destroyed: usable from static destructors at exit.
  static const Driver *instance = [] {
    auto *d = new Driver();
    std::string missing;
#define KVC_RESOLVE_DRIVER_FUNCTION(name)                                      \
  if (missing.empty()) {                                                       \
    cudaDriverEntryPointQueryResult query = cudaDriverEntryPointSuccess;       \
    cudaError_t err = cudaGetDriverEntryPointByVersion(                        \
        #name, reinterpret_cast<void **>(&d->name##_), CUDA_VERSION,           \
        cudaEnableDefault, &query);                                            \
    if (err != cudaSuccess || query != cudaDriverEntryPointSuccess ||          \
        !d->name##_)                                                           \
      missing = std::string(#name) + " (" +                                    \
                (err != cudaSuccess ? cudaGetErrorName(err)                    \
                                    : "not found in the driver") +             \
                ")";                                                           \
  }
    KVC_DRIVER_FUNCTIONS(KVC_RESOLVE_DRIVER_FUNCTION)
#undef KVC_RESOLVE_DRIVER_FUNCTION
    if (!missing.empty()) {
      d->failure = CUDA_ERROR_NOT_INITIALIZED;
      d->failureMessage =
          "the CUDA driver is not usable: cannot look up " + missing;
      return d;
    }
    CUresult init = d->cuInit_(0);
    if (init != CUDA_SUCCESS) {
      const char *name = nullptr;
      if (d->cuGetErrorName_(init, &name) != CUDA_SUCCESS || !name)
        name = "unknown CUresult";
      d->failure = init;
      d->failureMessage = std::string("cuInit failed: ") + name;
      return d;
    }
    d->available = true;
    return d;
  }();
  return *instance;
}

#undef KVC_DRIVER_FUNCTIONS

//===--------------------------- Error record -----------------------------===//

struct ErrorRecord {
  std::mutex mutex;
  std::atomic<int32_t> code{0};
  std::string message; ///< changes only while code == 0 (or when cleared)
};

ErrorRecord &errorRecord() {
  static ErrorRecord *record = new ErrorRecord(); // never destroyed
  return *record;
}

bool errorRecorded() {
  return errorRecord().code.load(std::memory_order_acquire) != 0;
}

/// Prints `message` and records it unless an earlier error is recorded.
void recordError(int32_t code, const std::string &message) {
  ErrorRecord &record = errorRecord();
  std::lock_guard<std::mutex> lock(record.mutex);
  const bool first = record.code.load(std::memory_order_relaxed) == 0;
  std::fprintf(stderr, "kvc runtime: %s%s\n", message.c_str(),
               first ? " (kernel launches are skipped until "
                       "kvc_rt_gpu_clear_error())"
                     : "");
  if (first) {
    record.message = message;
    record.code.store(code != 0 ? code : int32_t(CUDA_ERROR_UNKNOWN),
                      std::memory_order_release);
  }
}

/// True for CUDA_SUCCESS; otherwise records "<api>: <call> failed: ...".
bool check(CUresult result, const char *api, const char *call,
           const std::string &detail = std::string()) {
  if (result == CUDA_SUCCESS)
    return true;
  const Driver &d = driver();
  const char *name = nullptr, *text = nullptr;
  if (d.cuGetErrorName_(result, &name) != CUDA_SUCCESS || !name)
    name = "unknown CUresult";
  if (d.cuGetErrorString_(result, &text) != CUDA_SUCCESS || !text)
    text = "";
  recordError(int32_t(result), std::string(api) + ": " + call +
                                   " failed: " + name + ": " + text + detail);
  return false;
}

//===----------------------------- Contexts -------------------------------===//

thread_local int32_t defaultDevice = 0;

/// The retained primary context of `device`, or nullptr (recorded).
CUcontext primaryContext(int32_t device, const char *api) {
  static std::mutex *mutex = new std::mutex();
  static auto *contexts = new std::map<int32_t, CUcontext>();
  std::lock_guard<std::mutex> lock(*mutex);
  auto it = contexts->find(device);
  if (it != contexts->end())
    return it->second;
  const Driver &d = driver();
  CUdevice handle;
  if (!check(d.cuDeviceGet_(&handle, device), api, "cuDeviceGet",
             " (device " + std::to_string(device) + ")"))
    return nullptr;
  CUcontext context = nullptr;
  // Retained for the life of the process, like upstream; it is the context
  // the CUDA runtime (and so the runtime's CUDA backend) uses too, so cache
  // memory is valid in kernels launched here.
  if (!check(d.cuDevicePrimaryCtxRetain_(&context, handle), api,
             "cuDevicePrimaryCtxRetain"))
    return nullptr;
  contexts->emplace(device, context);
  return context;
}

/// Makes the default device's primary context current for the scope.
class ScopedContext {
public:
  explicit ScopedContext(const char *api) : api_(api) {
    const Driver &d = driver();
    if (!d.available) {
      recordError(int32_t(d.failure),
                  std::string(api) + ": " + d.failureMessage);
      return;
    }
    if (CUcontext context = primaryContext(defaultDevice, api))
      pushed_ = check(d.cuCtxPushCurrent_(context), api, "cuCtxPushCurrent");
  }
  ~ScopedContext() {
    if (!pushed_)
      return;
    CUcontext popped;
    check(driver().cuCtxPopCurrent_(&popped), api_, "cuCtxPopCurrent");
  }
  ScopedContext(const ScopedContext &) = delete;
  ScopedContext &operator=(const ScopedContext &) = delete;

  /// False when the call must not go on (recorded).
  bool ok() const { return pushed_; }

private:
  const char *api_;
  bool pushed_ = false;
};

CUdeviceptr devicePointer(const void *p) {
  return reinterpret_cast<CUdeviceptr>(p);
}

//===----------------------------- Launches -------------------------------===//

/// Checks MLIR index launch sizes (they must fit cuLaunchKernel's unsigned).
bool checkDims(const char *api, const char *what, intptr_t x, intptr_t y,
               intptr_t z) {
  for (intptr_t v : {x, y, z})
    if (v < 1 || uint64_t(v) > UINT_MAX) {
      recordError(int32_t(CUDA_ERROR_INVALID_VALUE),
                  std::string(api) + ": " + what + " (" + std::to_string(x) +
                      ", " + std::to_string(y) + ", " + std::to_string(z) +
                      ") out of range [1, 2^32)");
      return false;
    }
  return true;
}

/// The dynamic shared memory each function is known to allow (its
/// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES as last read or set),
/// so that only a function's first launch asks the driver. Forgotten when
/// a module is unloaded: a later function may get the same handle.
struct SharedMemoryAllowances {
  std::mutex mutex;
  std::map<CUfunction, int> bytes;
};

/// Never destroyed: modules are unloaded from global destructors.
SharedMemoryAllowances &sharedMemoryAllowances() {
  static auto *allowances = new SharedMemoryAllowances;
  return *allowances;
}

/// Allows `smem` bytes of dynamic shared memory (the default limit is
/// 48 KiB less the function's static shared memory; past it the function
/// must opt in).
bool prepareSharedMemory(const char *api, CUfunction function, int32_t smem) {
  if (smem < 0) {
    recordError(int32_t(CUDA_ERROR_INVALID_VALUE),
                std::string(api) + ": negative dynamic shared memory size " +
                    std::to_string(smem));
    return false;
  }
  if (smem == 0)
    return true;
  SharedMemoryAllowances &allowances = sharedMemoryAllowances();
  std::lock_guard<std::mutex> lock(allowances.mutex);
  auto known = allowances.bytes.find(function);
  if (known != allowances.bytes.end() && smem <= known->second)
    return true;
  const Driver &d = driver();
  int allowed = 0;
  if (!check(d.cuFuncGetAttribute_(
                 &allowed, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                 function),
             api, "cuFuncGetAttribute"))
    return false;
  allowances.bytes[function] = allowed;
  if (smem <= allowed)
    return true;
  CUdevice device;
  int maxShared = 0;
  if (!check(d.cuDeviceGet_(&device, defaultDevice), api, "cuDeviceGet") ||
      !check(d.cuDeviceGetAttribute_(
                 &maxShared,
                 CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, device),
             api, "cuDeviceGetAttribute"))
    return false;
  if (smem > maxShared) {
    recordError(int32_t(CUDA_ERROR_INVALID_VALUE),
                std::string(api) + ": " + std::to_string(smem) +
                    " bytes of dynamic shared memory requested; device " +
                    std::to_string(defaultDevice) + " allows at most " +
                    std::to_string(maxShared));
    return false;
  }
  if (!check(
          d.cuFuncSetAttribute_(
              function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem),
          api, "cuFuncSetAttribute"))
    return false;
  allowances.bytes[function] = smem;
  return true;
}

} // namespace

extern "C" {

int32_t kvc_rt_gpu_last_error(const char **message) {
  ErrorRecord &record = errorRecord();
  std::lock_guard<std::mutex> lock(record.mutex);
  if (message)
    *message = record.message.c_str();
  return record.code.load(std::memory_order_relaxed);
}

void kvc_rt_gpu_clear_error(void) {
  ErrorRecord &record = errorRecord();
  std::lock_guard<std::mutex> lock(record.mutex);
  record.code.store(0, std::memory_order_release);
  record.message.clear();
}

//===------------------------------ Modules -------------------------------===//

void *mgpuModuleLoad(void *data, size_t /*size*/) {
  ScopedContext scope("mgpuModuleLoad");
  if (!scope.ok())
    return nullptr;
  CUmodule module = nullptr;
  if (!check(driver().cuModuleLoadData_(&module, data), "mgpuModuleLoad",
             "cuModuleLoadData"))
    return nullptr;
  return module;
}

void *mgpuModuleLoadJIT(void *data, int optLevel) {
  ScopedContext scope("mgpuModuleLoadJIT");
  if (!scope.ok())
    return nullptr;
  char log[4096] = {0};
  CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER,
                            CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                            CU_JIT_OPTIMIZATION_LEVEL};
  void *values[] = {log, reinterpret_cast<void *>(sizeof(log)),
                    reinterpret_cast<void *>(intptr_t(optLevel))};
  CUmodule module = nullptr;
  CUresult result =
      driver().cuModuleLoadDataEx_(&module, data, 3, options, values);
  log[sizeof(log) - 1] = 0;
  if (!check(result, "mgpuModuleLoadJIT", "cuModuleLoadDataEx",
             log[0] ? std::string("; JIT log: ") + log : std::string()))
    return nullptr;
  return module;
}

void mgpuModuleUnload(void *module) {
  if (!module) // a failed load, already recorded
    return;
  // gpu-to-llvm unloads its modules from global destructors, which can run
  // after the driver has shut down at exit (taking every module with it):
  // the context push then fails with CUDA_ERROR_DEINITIALIZED, or with a
  // code the driver can no longer name. Nothing is left to unload then.
  const Driver &d = driver();
  if (!d.available)
    return; // no module was ever loaded
  CUcontext context = primaryContext(defaultDevice, "mgpuModuleUnload");
  if (!context)
    return;
  CUresult pushed = d.cuCtxPushCurrent_(context);
  const char *name = nullptr;
  if (pushed == CUDA_ERROR_DEINITIALIZED ||
      (pushed != CUDA_SUCCESS &&
       (d.cuGetErrorName_(pushed, &name) != CUDA_SUCCESS || !name)))
    return;
  if (!check(pushed, "mgpuModuleUnload", "cuCtxPushCurrent"))
    return;
  {
    SharedMemoryAllowances &allowances = sharedMemoryAllowances();
    std::lock_guard<std::mutex> lock(allowances.mutex);
    allowances.bytes.clear();
  }
  check(d.cuModuleUnload_(static_cast<CUmodule>(module)), "mgpuModuleUnload",
        "cuModuleUnload");
  CUcontext popped;
  check(d.cuCtxPopCurrent_(&popped), "mgpuModuleUnload", "cuCtxPopCurrent");
}

void *mgpuModuleGetFunction(void *module, const char *name) {
  if (!module || !name) {
    recordError(int32_t(CUDA_ERROR_INVALID_HANDLE),
                std::string("mgpuModuleGetFunction: ") +
                    (module ? "NULL kernel name" : "no module (NULL)") +
                    " for kernel " + (name ? name : "(null)"));
    return nullptr;
  }
  ScopedContext scope("mgpuModuleGetFunction");
  if (!scope.ok())
    return nullptr;
  CUfunction function = nullptr;
  if (!check(driver().cuModuleGetFunction_(&function,
                                           static_cast<CUmodule>(module), name),
             "mgpuModuleGetFunction", "cuModuleGetFunction",
             std::string(" (kernel ") + name + ")"))
    return nullptr;
  return function;
}

//===----------------------------- Launches -------------------------------===//

void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t smem, void *stream,
                      void **params, void **extra, size_t /*paramsCount*/) {
  static const char *api = "mgpuLaunchKernel";
  if (errorRecorded())
    return;
  if (!function) {
    recordError(int32_t(CUDA_ERROR_INVALID_HANDLE),
                std::string(api) + ": no kernel function (NULL)");
    return;
  }
  if (!checkDims(api, "grid", gridX, gridY, gridZ) ||
      !checkDims(api, "block", blockX, blockY, blockZ))
    return;
  ScopedContext scope(api);
  auto *f = static_cast<CUfunction>(function);
  if (!scope.ok() || !prepareSharedMemory(api, f, smem))
    return;
  check(driver().cuLaunchKernel_(
            f, unsigned(gridX), unsigned(gridY), unsigned(gridZ),
            unsigned(blockX), unsigned(blockY), unsigned(blockZ),
            unsigned(smem), static_cast<CUstream>(stream), params, extra),
        api, "cuLaunchKernel");
}

void mgpuLaunchClusterKernel(void *function, intptr_t clusterX,
                             intptr_t clusterY, intptr_t clusterZ,
                             intptr_t gridX, intptr_t gridY, intptr_t gridZ,
                             intptr_t blockX, intptr_t blockY, intptr_t blockZ,
                             int32_t smem, void *stream, void **params,
                             void **extra) {
  static const char *api = "mgpuLaunchClusterKernel";
  if (errorRecorded())
    return;
  if (!function) {
    recordError(int32_t(CUDA_ERROR_INVALID_HANDLE),
                std::string(api) + ": no kernel function (NULL)");
    return;
  }
  if (!checkDims(api, "cluster", clusterX, clusterY, clusterZ) ||
      !checkDims(api, "grid", gridX, gridY, gridZ) ||
      !checkDims(api, "block", blockX, blockY, blockZ))
    return;
  ScopedContext scope(api);
  auto *f = static_cast<CUfunction>(function);
  if (!scope.ok() || !prepareSharedMemory(api, f, smem))
    return;
  const Driver &d = driver();
  // Portable clusters have at most 8 blocks; larger ones need an opt-in.
  if (uint64_t(clusterX) * uint64_t(clusterY) * uint64_t(clusterZ) > 8 &&
      !check(d.cuFuncSetAttribute_(
                 f, CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1),
             api, "cuFuncSetAttribute"))
    return;
  CUlaunchAttribute cluster = {};
  cluster.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  cluster.value.clusterDim.x = unsigned(clusterX);
  cluster.value.clusterDim.y = unsigned(clusterY);
  cluster.value.clusterDim.z = unsigned(clusterZ);
  CUlaunchConfig config = {};
  config.gridDimX = unsigned(gridX);
  config.gridDimY = unsigned(gridY);
  config.gridDimZ = unsigned(gridZ);
  config.blockDimX = unsigned(blockX);
  config.blockDimY = unsigned(blockY);
  config.blockDimZ = unsigned(blockZ);
  config.sharedMemBytes = unsigned(smem);
  config.hStream = static_cast<CUstream>(stream);
  config.attrs = &cluster;
  config.numAttrs = 1;
  check(d.cuLaunchKernelEx_(&config, f, params, extra), api,
        "cuLaunchKernelEx");
}

//===------------------------- Streams and events -------------------------===//

void *mgpuStreamCreate(void) {
  ScopedContext scope("mgpuStreamCreate");
  if (!scope.ok())
    return nullptr;
  CUstream stream = nullptr;
  if (!check(driver().cuStreamCreate_(&stream, CU_STREAM_NON_BLOCKING),
             "mgpuStreamCreate", "cuStreamCreate"))
    return nullptr;
  return stream;
}

void mgpuStreamDestroy(void *stream) {
  if (!stream) // a failed create (the default stream is never destroyed)
    return;
  ScopedContext scope("mgpuStreamDestroy");
  if (scope.ok())
    check(driver().cuStreamDestroy_(static_cast<CUstream>(stream)),
          "mgpuStreamDestroy", "cuStreamDestroy");
}

void mgpuStreamSynchronize(void *stream) {
  ScopedContext scope("mgpuStreamSynchronize");
  if (scope.ok())
    check(driver().cuStreamSynchronize_(static_cast<CUstream>(stream)),
          "mgpuStreamSynchronize", "cuStreamSynchronize");
}

void mgpuStreamWaitEvent(void *stream, void *event) {
  ScopedContext scope("mgpuStreamWaitEvent");
  if (scope.ok())
    check(driver().cuStreamWaitEvent_(static_cast<CUstream>(stream),
                                      static_cast<CUevent>(event), 0),
          "mgpuStreamWaitEvent", "cuStreamWaitEvent");
}

void *mgpuEventCreate(void) {
  ScopedContext scope("mgpuEventCreate");
  if (!scope.ok())
    return nullptr;
  CUevent event = nullptr;
  if (!check(driver().cuEventCreate_(&event, CU_EVENT_DISABLE_TIMING),
             "mgpuEventCreate", "cuEventCreate"))
    return nullptr;
  return event;
}

void mgpuEventDestroy(void *event) {
  if (!event)
    return;
  ScopedContext scope("mgpuEventDestroy");
  if (scope.ok())
    check(driver().cuEventDestroy_(static_cast<CUevent>(event)),
          "mgpuEventDestroy", "cuEventDestroy");
}

void mgpuEventSynchronize(void *event) {
  ScopedContext scope("mgpuEventSynchronize");
  if (scope.ok())
    check(driver().cuEventSynchronize_(static_cast<CUevent>(event)),
          "mgpuEventSynchronize", "cuEventSynchronize");
}

void mgpuEventRecord(void *event, void *stream) {
  ScopedContext scope("mgpuEventRecord");
  if (scope.ok())
    check(driver().cuEventRecord_(static_cast<CUevent>(event),
                                  static_cast<CUstream>(stream)),
          "mgpuEventRecord", "cuEventRecord");
}

//===------------------------------ Memory --------------------------------===//

void *mgpuMemAlloc(uint64_t bytes, void * /*stream*/, bool isHostShared) {
  if (bytes == 0)
    return nullptr;
  ScopedContext scope("mgpuMemAlloc");
  if (!scope.ok())
    return nullptr;
  CUdeviceptr ptr = 0;
  const Driver &d = driver();
  const std::string detail = " (" + std::to_string(bytes) + " bytes)";
  bool ok = isHostShared
                ? check(d.cuMemAllocManaged_(&ptr, bytes, CU_MEM_ATTACH_GLOBAL),
                        "mgpuMemAlloc", "cuMemAllocManaged", detail)
                : check(d.cuMemAlloc_(&ptr, bytes), "mgpuMemAlloc",
                        "cuMemAlloc", detail);
  return ok ? reinterpret_cast<void *>(ptr) : nullptr;
}

void mgpuMemFree(void *ptr, void * /*stream*/) {
  if (!ptr)
    return;
  ScopedContext scope("mgpuMemFree");
  if (scope.ok())
    check(driver().cuMemFree_(devicePointer(ptr)), "mgpuMemFree", "cuMemFree");
}

void mgpuMemcpy(void *dst, void *src, size_t bytes, void *stream) {
  if (bytes == 0)
    return;
  ScopedContext scope("mgpuMemcpy");
  if (scope.ok())
    check(driver().cuMemcpyAsync_(devicePointer(dst), devicePointer(src), bytes,
                                  static_cast<CUstream>(stream)),
          "mgpuMemcpy", "cuMemcpyAsync",
          " (" + std::to_string(bytes) + " bytes)");
}

void mgpuMemset32(void *dst, unsigned int value, size_t count, void *stream) {
  if (count == 0)
    return;
  ScopedContext scope("mgpuMemset32");
  if (scope.ok())
    check(driver().cuMemsetD32Async_(devicePointer(dst), value, count,
                                     static_cast<CUstream>(stream)),
          "mgpuMemset32", "cuMemsetD32Async");
}

void mgpuMemset16(void *dst, unsigned short value, size_t count, void *stream) {
  if (count == 0)
    return;
  ScopedContext scope("mgpuMemset16");
  if (scope.ok())
    check(driver().cuMemsetD16Async_(devicePointer(dst), value, count,
                                     static_cast<CUstream>(stream)),
          "mgpuMemset16", "cuMemsetD16Async");
}

void mgpuSetDefaultDevice(int32_t device) { defaultDevice = device; }

} // extern "C"
