/*===- kvc_runtime_gpu.h - what kvc-generated GPU host code calls -*- C -*-===*\
 *
 * `kvc-gpu-pipeline` lowers kvc ops to `gpu.launch_func` of generated
 * kernels, and upstream MLIR's `gpu-to-llvm` turns the launches (and
 * gpu.alloc / dealloc / memcpy / memset / wait) into calls of the `mgpu*`
 * functions of MLIR's CUDA runtime wrappers
 * (mlir/lib/ExecutionEngine/CudaRuntimeWrappers.cpp). Debian ships no
 * libmlir_cuda_runtime, so the kvc runtime exports them itself, with the
 * signatures MLIR 22's `gpu-to-llvm` emits (handles are `void *` here:
 * CUmodule, CUfunction, CUstream and CUevent are pointers, so the ABI is
 * the same and this header needs no cuda.h).
 *
 * AVAILABILITY: these functions exist only in a runtime built with the CUDA
 * backend (CMake option KVC_RUNTIME_CUDA; kvc_rt_backend_available(
 * KVC_RT_BACKEND_CUDA, ...) tells at run time). Without it the symbols are
 * absent, and linking or JIT-resolving code that calls them fails. The
 * library does not link libcuda: the CUDA driver is looked up on first use
 * (through the CUDA runtime), so the library loads on machines without a
 * GPU driver, and the mgpu* functions then fail as described below.
 *
 * Semantics follow upstream: the primary context of the default device
 * (device 0 unless mgpuSetDefaultDevice) is retained on first use and made
 * current for the duration of each call; streams are non-blocking; copies
 * and memsets are asynchronous on the given stream.
 *
 * ERRORS: upstream prints failed driver calls and carries on. Here every
 * failure is printed to stderr ("kvc runtime: <function>: <driver call>
 * failed: <CUresult name>: <description>") and the first one is recorded
 * process-wide until kvc_rt_gpu_clear_error(). While an error is recorded,
 * kernel launches (mgpuLaunchKernel, mgpuLaunchClusterKernel) do nothing:
 * their outputs keep whatever they held, so a host that finds
 * kvc_rt_gpu_last_error() != 0 after a call must discard its results.
 * Functions returning a handle or pointer return NULL on failure; releasing
 * a NULL handle does nothing. A driver error that poisons the context
 * (e.g. an illegal address in a kernel) makes every later call fail too;
 * clearing the record does not repair the context.
\*===----------------------------------------------------------------------===*/

#ifndef KVC_RUNTIME_GPU_H
#define KVC_RUNTIME_GPU_H

#include "kvc_runtime.h"

#ifndef __cplusplus
#include <stdbool.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*===---------------------------- Error record ---------------------------===*/

/** The first CUDA error of the mgpu* functions since the process started or
 *  since the last kvc_rt_gpu_clear_error(): its CUresult (0, CUDA_SUCCESS,
 *  when none). If `message` is not NULL it receives the error's text ("" when
 *  none), owned by the runtime and valid until kvc_rt_gpu_clear_error().
 *  When the CUDA driver cannot be loaded the result is
 *  CUDA_ERROR_NOT_INITIALIZED (3) and the message names the CUDA runtime's
 *  error; when cuInit fails, cuInit's CUresult (e.g. CUDA_ERROR_NO_DEVICE).
 *  Thread-safe. */
KVC_RT_API int32_t kvc_rt_gpu_last_error(const char **message);

/** Forgets the recorded error: kernel launches run again. Thread-safe. */
KVC_RT_API void kvc_rt_gpu_clear_error(void);

/*===------------------- The MLIR CUDA runtime wrappers ------------------===*/
/* Called by code lowered with gpu-to-llvm; not meant to be called by hand
 * (but they may be: the runtime's CUDA test does). `stream` NULL is the
 * legacy default stream. */

/** cuModuleLoadData of a cubin, fatbin or PTX image (`gpu-module-to-binary`
 *  format bin / fatbin); `size` is unused. NULL on failure. */
KVC_RT_API void *mgpuModuleLoad(void *data, size_t size);
/** Loads NUL-terminated PTX (format isa), JIT-compiled by the driver at
 *  optimization level `opt_level`; the JIT log is part of the error
 *  message. NULL on failure. */
KVC_RT_API void *mgpuModuleLoadJIT(void *data, int opt_level);
KVC_RT_API void mgpuModuleUnload(void *module);
/** The kernel `name` of `module`; NULL on failure. */
KVC_RT_API void *mgpuModuleGetFunction(void *module, const char *name);

/** cuLaunchKernel. Grid and block sizes are MLIR `index` values and must be
 *  in [1, 2^32); `smem` bytes of dynamic shared memory (raised past the
 *  48 KiB default when needed, up to the device's opt-in maximum).
 *  `params` / `extra` as in cuLaunchKernel; `params_count` is unused. Does
 *  nothing while an error is recorded. */
KVC_RT_API void mgpuLaunchKernel(void *function, intptr_t grid_x,
                                 intptr_t grid_y, intptr_t grid_z,
                                 intptr_t block_x, intptr_t block_y,
                                 intptr_t block_z, int32_t smem, void *stream,
                                 void **params, void **extra,
                                 size_t params_count);
/** The same with thread-block clusters (gpu.launch_func `clusters in`),
 *  through cuLaunchKernelEx; clusters of more than 8 blocks are allowed
 *  where the device supports them. */
KVC_RT_API void mgpuLaunchClusterKernel(void *function, intptr_t cluster_x,
                                        intptr_t cluster_y, intptr_t cluster_z,
                                        intptr_t grid_x, intptr_t grid_y,
                                        intptr_t grid_z, intptr_t block_x,
                                        intptr_t block_y, intptr_t block_z,
                                        int32_t smem, void *stream,
                                        void **params, void **extra);

/** A new non-blocking stream; NULL on failure. */
KVC_RT_API void *mgpuStreamCreate(void);
KVC_RT_API void mgpuStreamDestroy(void *stream);
KVC_RT_API void mgpuStreamSynchronize(void *stream);
/** Makes `stream` wait for `event`. */
KVC_RT_API void mgpuStreamWaitEvent(void *stream, void *event);

/** A new event without timing; NULL on failure. */
KVC_RT_API void *mgpuEventCreate(void);
KVC_RT_API void mgpuEventDestroy(void *event);
KVC_RT_API void mgpuEventSynchronize(void *event);
KVC_RT_API void mgpuEventRecord(void *event, void *stream);

/** `bytes` of device memory (cuMemAlloc), or of managed memory when
 *  `is_host_shared` (gpu.alloc host_shared; as upstream). NULL for 0 bytes
 *  and on failure. `stream` is unused: the allocation is synchronous. */
KVC_RT_API void *mgpuMemAlloc(uint64_t bytes, void *stream,
                              bool is_host_shared);
/** cuMemFree (synchronous); NULL does nothing. `stream` is unused. */
KVC_RT_API void mgpuMemFree(void *ptr, void *stream);
/** cuMemcpyAsync of `bytes` between any two addresses (unified addressing:
 *  host or device). */
KVC_RT_API void mgpuMemcpy(void *dst, void *src, size_t bytes, void *stream);
/** Sets `count` 32-bit / 16-bit words at `dst` to `value`. */
KVC_RT_API void mgpuMemset32(void *dst, unsigned int value, size_t count,
                             void *stream);
KVC_RT_API void mgpuMemset16(void *dst, unsigned short value, size_t count,
                             void *stream);

/** The device whose primary context later calls on this thread use
 *  (thread-local, default 0, as upstream). */
KVC_RT_API void mgpuSetDefaultDevice(int32_t device);

#ifdef __cplusplus
}
#endif

#endif /* KVC_RUNTIME_GPU_H */
