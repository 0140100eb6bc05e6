//===- PagePool.h - Reference-counted page indices with a free list -*- C++ -*-===//
//
// The bookkeeping of one layer's pages (the K and V pools share it: page i
// of a layer is K block set i and V block set i). Allocation pops a free
// stack and release pushes onto it, so both are O(1) whatever the pool size;
// the stack is LIFO, so a page just released is reused first (warm in
// caches). Reference counts implement prefix sharing between forks.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_RUNTIME_LIB_PAGEPOOL_H
#define KVC_RUNTIME_LIB_PAGEPOOL_H

#include "HostArray.h"
#include "Status.h"

#include <cstdint>

namespace kvc {
namespace rt {

class PagePool {
public:
  /// `numPages` pages, all free. OUT_OF_MEMORY if the host arrays fail.
  Status init(uint32_t numPages);

  uint32_t capacity() const { return capacity_; }
  uint32_t freeCount() const { return freeCount_; }
  uint32_t usedCount() const { return capacity_ - freeCount_; }
  /// Pages with a reference count above 1.
  uint32_t sharedCount() const { return sharedCount_; }

  /// Takes a free page (reference count 1). Precondition: freeCount() > 0.
  int32_t allocate();
  /// One more reference to a used page.
  void retain(int32_t page);
  /// Drops a reference; returns true when the page became free.
  bool release(int32_t page);

  uint32_t refCount(int32_t page) const { return refCounts_[page]; }
  /// The free stack (freeCount() entries), for invariant checks.
  const int32_t *freeStack() const { return freeStack_.data(); }

private:
  uint32_t capacity_ = 0;
  uint32_t freeCount_ = 0;
  uint32_t sharedCount_ = 0;
  HostArray<uint32_t> refCounts_;
  HostArray<int32_t> freeStack_;
};

} // namespace rt
} // namespace kvc

#endif // KVC_RUNTIME_LIB_PAGEPOOL_H
