//===- PageReadKernel.cu - Reading pages from device code (test only) -----===//
//
// What a generated decode kernel does first: follow a sequence's device
// page table into a pool and load its blocks with aligned 16-byte loads.
// The test copies the pages out this way and compares them with
// kvc_rt_read_block, which proves the view's device pointers, page-table
// mirror and strides are usable from kernels.
//
//===----------------------------------------------------------------------===//

#include "PageReadKernel.h"

namespace {
__global__ void copyPagesKernel(const uint8_t *pool, const int32_t *pageTable,
                                uint64_t pageBytes, uint8_t *out) {
  const uint8_t *src = pool + uint64_t(pageTable[blockIdx.x]) * pageBytes;
  uint8_t *dst = out + uint64_t(blockIdx.x) * pageBytes;
  for (uint64_t b = uint64_t(threadIdx.x) * 16; b < pageBytes;
       b += uint64_t(blockDim.x) * 16)
    *reinterpret_cast<uint4 *>(dst + b) =
        *reinterpret_cast<const uint4 *>(src + b);
}
} // namespace

cudaError_t copyPagesOnDevice(const void *pool, const int32_t *pageTable,
                              uint32_t numPages, uint64_t pageBytes,
                              void *out, cudaStream_t stream) {
  if (numPages == 0)
    return cudaSuccess;
  copyPagesKernel<<<numPages, 128, 0, stream>>>(
      static_cast<const uint8_t *>(pool), pageTable, pageBytes,
      static_cast<uint8_t *>(out));
  return cudaGetLastError();
}
