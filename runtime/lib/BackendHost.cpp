//===- BackendHost.cpp - CPU and CPU_STAGED backends ----------------------===//

#include "Backend.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace kvc {
namespace rt {

namespace {
// Arenas are aligned like a cudaMalloc allocation so that offsets computed
// for one backend are valid for every backend.
constexpr size_t kArenaAlignment = 256;

class HostBackend final : public Backend {
public:
  explicit HostBackend(bool staged) : staged_(staged) {}

  kvc_rt_backend kind() const override {
    return staged_ ? KVC_RT_BACKEND_CPU_STAGED : KVC_RT_BACKEND_CPU;
  }
  bool hostAccessible() const override { return !staged_; }

  Status allocate(size_t bytes, uint8_t **out) override {
    const size_t rounded =
        (bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
    // Not zero-filled: the cache zeroes each page when it hands it out, so
    // untouched parts of a large arena are never committed.
    void *p = std::aligned_alloc(kArenaAlignment, rounded ? rounded : 1);
    if (!p)
      return Status::error(KVC_RT_ERROR_OUT_OF_MEMORY,
                           "cannot allocate a host arena of " +
                               std::to_string(bytes) + " bytes");
    *out = static_cast<uint8_t *>(p);
    return Status::ok();
  }
  void release(uint8_t *arena) override { std::free(arena); }

  Status copyToArena(uint8_t *dst, const void *src, size_t bytes) override {
    if (bytes)
      std::memcpy(dst, src, bytes);
    return Status::ok();
  }
  Status copyToHost(void *dst, const uint8_t *src,
                    size_t bytes) const override {
    if (bytes)
      std::memcpy(dst, src, bytes);
    return Status::ok();
  }
  Status copyWithinArena(uint8_t *dst, const uint8_t *src,
                         size_t bytes) override {
    if (bytes)
      std::memcpy(dst, src, bytes);
    return Status::ok();
  }
  Status fillZero(uint8_t *dst, size_t bytes) override {
    if (bytes)
      std::memset(dst, 0, bytes);
    return Status::ok();
  }
  Status synchronize() override { return Status::ok(); }

private:
  bool staged_;
};
} // namespace

std::unique_ptr<Backend> createHostBackend(bool staged) {
  return std::unique_ptr<Backend>(new HostBackend(staged));
}

} // namespace rt
} // namespace kvc
