//===- Backend.h - Where a cache's arena lives ------------------*- C++ -*-===//
//
// The cache logic is written once against this interface. A backend owns
// one arena allocation and moves bytes between it and the host. On a
// host-accessible backend (CPU) the cache may also read and write the arena
// directly, which avoids a staging copy; everything else (CUDA, and the
// CPU_STAGED testing backend) goes through the copy functions only.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_RUNTIME_LIB_BACKEND_H
#define KVC_RUNTIME_LIB_BACKEND_H

#include "Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>

namespace kvc {
namespace rt {

class Backend {
public:
  virtual ~Backend() = default;

  virtual kvc_rt_backend kind() const = 0;
  /// True if arena memory may be dereferenced on the host.
  virtual bool hostAccessible() const = 0;

  /// Allocates the arena (at least 256-byte aligned). Uninitialized.
  virtual Status allocate(size_t bytes, uint8_t **out) = 0;
  /// Releases what allocate returned (after finishing pending copies).
  virtual void release(uint8_t *arena) = 0;

  /// Host -> arena. `src` may be reused as soon as this returns.
  virtual Status copyToArena(uint8_t *dst, const void *src, size_t bytes) = 0;
  /// Arena -> host; complete when it returns.
  virtual Status copyToHost(void *dst, const uint8_t *src,
                            size_t bytes) const = 0;
  /// Arena -> arena (regions do not overlap).
  virtual Status copyWithinArena(uint8_t *dst, const uint8_t *src,
                                 size_t bytes) = 0;
  virtual Status fillZero(uint8_t *dst, size_t bytes) = 0;
  /// Waits for every enqueued operation.
  virtual Status synchronize() = 0;
  /// The cudaStream_t, or nullptr.
  virtual void *stream() const { return nullptr; }
  /// Makes this backend's stream wait for the work enqueued so far on
  /// `other` (a cudaStream_t) without blocking the host. Nothing to do on
  /// the host backends, whose operations complete when they return.
  virtual Status waitFor(void * /*other*/) { return Status::ok(); }
};

/// CPU (`staged` = false) or CPU_STAGED (`staged` = true) backend.
std::unique_ptr<Backend> createHostBackend(bool staged);

/// Pinned host buffer through which the CUDA backend uploads: callers'
/// (pageable) buffers are copied into it, so they can be reused as soon as
/// a copy call returns, whatever the driver does with pageable memory.
/// When it is full, the stream is synchronized and it is reused.
constexpr size_t kCudaUploadBufferBytes = size_t(4) << 20;

/// True if the library was built with the CUDA backend.
bool cudaSupportCompiled();
/// UNSUPPORTED when CUDA is not compiled in or `device` does not exist.
Status cudaBackendAvailable(int device);
/// A CUDA backend on `device` with its own non-blocking stream.
Status createCudaBackend(int device, std::unique_ptr<Backend> *out);

} // namespace rt
} // namespace kvc

#endif // KVC_RUNTIME_LIB_BACKEND_H
