//===- BackendCUDAUnavailable.cpp - Builds without the CUDA toolkit -------===//
//
// Compiled instead of BackendCUDA.cu when CMake found no CUDA compiler, so
// that the CUDA backend reports itself as unsupported instead of missing.
//
//===----------------------------------------------------------------------===//

#include "Backend.h"

namespace kvc {
namespace rt {

bool cudaSupportCompiled() { return false; }

Status cudaBackendAvailable(int) {
  return Status::error(KVC_RT_ERROR_UNSUPPORTED,
                       "the kvc runtime was built without CUDA support");
}

Status createCudaBackend(int device, std::unique_ptr<Backend> *) {
  return cudaBackendAvailable(device);
}

} // namespace rt
} // namespace kvc
