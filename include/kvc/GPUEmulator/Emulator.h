//===- Emulator.h - kvc's generated GPU kernels run on the host -*- C++ -*-===//
//
// The GPU emulator (lib/GPUEmulator): the functions that `gpu-to-llvm` host
// code calls (MLIR's CUDA runtime ABI, `mgpu*`, as kvc_runtime_gpu.h
// describes them), implemented on the host. Modules are the LLVM bitcode
// that `kvc-gpu-pipeline format=llvm` embeds; their kernels are rewritten
// for the host, JIT-compiled, and run one block at a time with a fiber per
// GPU thread; warp collectives (shfl.sync, mma.sync) and barriers are
// computed from the PTX ISA's definitions when all their threads arrive.
// Memory is host memory (CPU caches: the runtime's host backends), streams
// and events are synchronous. mma.sync rounds its exact sum once to f32, or
// with KVC_GPU_EMULATOR_MMA=truncate (read at each launch) follows a model
// of the tensor cores' truncating accumulation (lib/GPUEmulator/Warps.h);
// it takes fp16 subnormal inputs exactly, or with
// KVC_GPU_EMULATOR_MMA_SUBNORMALS=flush flushes them to zero.
//
// Two ways in: a program links libkvc_gpu_emulator.a, whose `mgpu*` C
// functions then take the place of the CUDA runtime's (the generated
// objects' calls resolve to them), or a JIT maps the names that
// forEachMgpuFunction lists to these functions (kvc-run --gpu-emulator).
//
// ERRORS, as the CUDA runtime's (kvc_runtime_gpu.h): whatever cannot be
// emulated (bitcode it cannot read, an intrinsic or inline PTX it does not
// know) or goes wrong in a kernel (a collective that not all lanes reach, a
// deadlock, a misaligned bulk prefetch: the grid stops there) is printed to
// stderr ("kvc gpu emulator: ...") and the first such error is recorded
// until clearError(); while one is recorded, launches do nothing (outputs
// keep what they held), and the functions returning a handle return NULL
// on failure.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_GPUEMULATOR_EMULATOR_H
#define KVC_GPUEMULATOR_EMULATOR_H

#include "kvc/GPUEmulator/Prefetches.h"

#include "llvm/ADT/STLFunctionalExtras.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace kvc {
namespace gpuemu {

/// The first error since the start or the last clearError(), "" if none.
/// Thread-safe.
std::string lastError();
void clearError();

void *moduleLoad(void *data, size_t size);
void *moduleLoadJIT(void *data, int optLevel);
void moduleUnload(void *module);
void *moduleGetFunction(void *module, const char *name);
void launchKernel(void *function, intptr_t gridX, intptr_t gridY,
                  intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                  intptr_t blockZ, int32_t smem, void *stream, void **params,
                  void **extra, size_t paramsCount);
void launchClusterKernel(void *function, intptr_t clusterX, intptr_t clusterY,
                         intptr_t clusterZ, intptr_t gridX, intptr_t gridY,
                         intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                         intptr_t blockZ, int32_t smem, void *stream,
                         void **params, void **extra);
void *streamCreate();
void streamDestroy(void *stream);
void streamSynchronize(void *stream);
void streamWaitEvent(void *stream, void *event);
void *eventCreate();
void eventDestroy(void *event);
void eventSynchronize(void *event);
void eventRecord(void *event, void *stream);
void *memAlloc(uint64_t bytes, void *stream, bool isHostShared);
void memFree(void *ptr, void *stream);
void memCopy(void *dst, void *src, size_t bytes, void *stream);
void memset32(void *dst, unsigned int value, size_t count, void *stream);
void memset16(void *dst, unsigned short value, size_t count, void *stream);
void setDefaultDevice(int32_t device);

/// Calls `visit` with each `mgpu*` name and the function above that
/// implements it (for a JIT's symbol map).
void forEachMgpuFunction(
    llvm::function_ref<void(const char *name, void *address)> visit);

} // namespace gpuemu
} // namespace kvc

#endif // KVC_GPUEMULATOR_EMULATOR_H
