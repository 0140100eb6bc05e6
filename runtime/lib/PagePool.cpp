//===- PagePool.cpp - Reference-counted page indices with a free list -----===//

#include "PagePool.h"

#include <string>

namespace kvc {
namespace rt {

Status PagePool::init(uint32_t numPages) {
  if (!refCounts_.allocate(numPages, 0) || !freeStack_.allocate(numPages, 0))
    return Status::error(KVC_RT_ERROR_OUT_OF_MEMORY,
                         "cannot allocate the bookkeeping of " +
                             std::to_string(numPages) + " pages");
  // Highest index at the bottom: a fresh pool hands out 0, 1, 2, ...
  for (uint32_t i = 0; i < numPages; ++i)
    freeStack_[i] = static_cast<int32_t>(numPages - 1 - i);
  capacity_ = numPages;
  freeCount_ = numPages;
  sharedCount_ = 0;
  return Status::ok();
}

int32_t PagePool::allocate() {
  KVC_RT_ASSERT(freeCount_ > 0, "allocate from an exhausted page pool");
  const int32_t page = freeStack_[--freeCount_];
  KVC_RT_ASSERT(refCounts_[page] == 0, "a free page is referenced");
  refCounts_[page] = 1;
  return page;
}

void PagePool::retain(int32_t page) {
  KVC_RT_ASSERT(refCounts_[page] > 0, "retain of a free page");
  if (++refCounts_[page] == 2)
    ++sharedCount_;
}

bool PagePool::release(int32_t page) {
  KVC_RT_ASSERT(refCounts_[page] > 0, "release of a free page");
  const uint32_t count = --refCounts_[page];
  if (count == 1)
    --sharedCount_;
  if (count > 0)
    return false;
  freeStack_[freeCount_++] = page;
  return true;
}

} // namespace rt
} // namespace kvc
