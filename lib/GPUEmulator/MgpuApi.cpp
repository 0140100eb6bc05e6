//===- MgpuApi.cpp - the emulator under the mgpu* C names -----------------===//
//
// For programs that link libkvc_gpu_emulator.a in place of the CUDA
// runtime: generated host objects call these names. A separate member of
// the archive, so that a JIT that maps the names itself (kvc-run) does not
// pull them in beside a runtime that has its own.
//
//===----------------------------------------------------------------------===//

#include "kvc/GPUEmulator/Emulator.h"

#include "kvc_runtime_gpu.h"

using namespace kvc::gpuemu;

extern "C" {
void *mgpuModuleLoad(void *data, size_t size) { return moduleLoad(data, size); }
void *mgpuModuleLoadJIT(void *data, int optLevel) {
  return moduleLoadJIT(data, optLevel);
}
void mgpuModuleUnload(void *module) { moduleUnload(module); }
void *mgpuModuleGetFunction(void *module, const char *name) {
  return moduleGetFunction(module, name);
}
void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t smem, void *stream,
                      void **params, void **extra, size_t paramsCount) {
  launchKernel(function, gridX, gridY, gridZ, blockX, blockY, blockZ, smem,
               stream, params, extra, paramsCount);
}
void mgpuLaunchClusterKernel(void *function, intptr_t clusterX,
                             intptr_t clusterY, intptr_t clusterZ,
                             intptr_t gridX, intptr_t gridY, intptr_t gridZ,
                             intptr_t blockX, intptr_t blockY, intptr_t blockZ,
                             int32_t smem, void *stream, void **params,
                             void **extra) {
  launchClusterKernel(function, clusterX, clusterY, clusterZ, gridX, gridY,
                      gridZ, blockX, blockY, blockZ, smem, stream, params,
                      extra);
}
void *mgpuStreamCreate(void) { return streamCreate(); }
void mgpuStreamDestroy(void *stream) { streamDestroy(stream); }
void mgpuStreamSynchronize(void *stream) { streamSynchronize(stream); }
void mgpuStreamWaitEvent(void *stream, void *event) {
  streamWaitEvent(stream, event);
}
void *mgpuEventCreate(void) { return eventCreate(); }
void mgpuEventDestroy(void *event) { eventDestroy(event); }
void mgpuEventSynchronize(void *event) { eventSynchronize(event); }
void mgpuEventRecord(void *event, void *stream) { eventRecord(event, stream); }
void *mgpuMemAlloc(uint64_t bytes, void *stream, bool isHostShared) {
  return memAlloc(bytes, stream, isHostShared);
}
void mgpuMemFree(void *ptr, void *stream) { memFree(ptr, stream); }
void mgpuMemcpy(void *dst, void *src, size_t bytes, void *stream) {
  memCopy(dst, src, bytes, stream);
}
void mgpuMemset32(void *dst, unsigned int value, size_t count, void *stream) {
  memset32(dst, value, count, stream);
}
void mgpuMemset16(void *dst, unsigned short value, size_t count,
                  void *stream) {
  memset16(dst, value, count, stream);
}
void mgpuSetDefaultDevice(int32_t device) { setDefaultDevice(device); }
}
