//===- PageReadKernel.h - Reading pages from device code (test only) -*- C++ -*-===//

#ifndef KVC_RUNTIME_TEST_CUDA_PAGEREADKERNEL_H
#define KVC_RUNTIME_TEST_CUDA_PAGEREADKERNEL_H

#include <cuda_runtime.h>

#include <cstdint>

/// Copies pages pageTable[0 .. numPages) (device memory) of `pool` to `out`
/// (device memory, numPages * pageBytes), on `stream`.
cudaError_t copyPagesOnDevice(const void *pool, const int32_t *pageTable,
                              uint32_t numPages, uint64_t pageBytes,
                              void *out, cudaStream_t stream);

#endif // KVC_RUNTIME_TEST_CUDA_PAGEREADKERNEL_H
