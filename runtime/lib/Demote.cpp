//===- Demote.cpp - Evicted tokens kept at a cheaper encoding -------------===//

#include "Demote.h"

#include "kvc/Numerics/Evict.h"

#include <cstdlib>
#include <cstring>

namespace kvc {
namespace rt {

Status checkDemoteSide(const numerics::SideEncoding &side, const char *name,
                       unsigned headDim, unsigned pageTokens) {
  std::string problem = numerics::checkDemoteEncoding(side);
  if (problem.empty())
    problem = numerics::validatePageConfig(side, headDim, pageTokens);
  if (!problem.empty())
    return invalidArgument(std::string("demotion ") + name +
                           " encoding: " + problem);
  return Status::ok();
}

DemotedTokens *DemotedTokens::create(const kvc_rt_encoding &demote,
                                     const numerics::CacheEncoding &encoding,
                                     uint32_t kvHeads, uint32_t headDim,
                                     uint32_t pageTokens, uint32_t maxPages) {
  auto *store = new (std::nothrow) DemotedTokens();
  if (!store)
    return nullptr;
  store->cEncoding_ = demote;
  store->cEncoding_.residual = 0;
  store->encoding_ = encoding;
  store->kvHeads_ = kvHeads;
  store->headDim_ = headDim;
  store->pageTokens_ = pageTokens;
  store->maxPages_ = maxPages;
  store->kBlock_ =
      numerics::computeBlockLayout(encoding.key, headDim, pageTokens);
  store->vBlock_ =
      numerics::computeBlockLayout(encoding.value, headDim, pageTokens);
  store->pageBytes_ =
      size_t{kvHeads} * (store->kBlock_.blockBytes + store->vBlock_.blockBytes);
  store->pages_ =
      static_cast<uint8_t **>(std::calloc(maxPages ? maxPages : 1,
                                          sizeof(uint8_t *)));
  if (!store->pages_) {
    delete store;
    return nullptr;
  }
  return store;
}

DemotedTokens::~DemotedTokens() {
  if (pages_)
    for (uint32_t p = 0; p < maxPages_; ++p)
      std::free(pages_[p]);
  std::free(pages_);
}

DemotedTokens *DemotedTokens::clone() const {
  DemotedTokens *copy = create(cEncoding_, encoding_, kvHeads_, headDim_,
                               pageTokens_, maxPages_);
  if (!copy)
    return nullptr;
  for (uint32_t p = 0; p < maxPages_; ++p) {
    if (!pages_[p])
      continue;
    bool created;
    if (!copy->ensurePage(p, &created)) {
      delete copy;
      return nullptr;
    }
    std::memcpy(copy->pages_[p], pages_[p], pageBytes_);
  }
  copy->demotedTokens = demotedTokens;
  return copy;
}

bool DemotedTokens::sameEncoding(const kvc_rt_encoding &other) const {
  return std::memcmp(&cEncoding_.key, &other.key, sizeof(other.key)) == 0 &&
         std::memcmp(&cEncoding_.value, &other.value, sizeof(other.value)) ==
             0;
}

bool DemotedTokens::ensurePage(uint32_t p, bool *created) {
  *created = false;
  if (pages_[p])
    return true;
  // Blocks are multiples of 16 bytes; 64-byte alignment keeps every block
  // 16-byte aligned as layout.md requires.
  const size_t bytes = (pageBytes_ + 63) / 64 * 64;
  void *page = std::aligned_alloc(64, bytes);
  if (!page)
    return false;
  std::memset(page, 0, bytes);
  pages_[p] = static_cast<uint8_t *>(page);
  ++pagesHeld_;
  *created = true;
  return true;
}

void DemotedTokens::dropPage(uint32_t p) {
  if (!pages_[p])
    return;
  std::free(pages_[p]);
  pages_[p] = nullptr;
  --pagesHeld_;
}

uint8_t *DemotedTokens::blockOf(uint32_t head, bool value,
                                uint64_t token) const {
  uint8_t *page = pages_[token / pageTokens_];
  if (!value)
    return page + size_t{head} * kBlock_.blockBytes;
  return page + size_t{kvHeads_} * kBlock_.blockBytes +
         size_t{head} * vBlock_.blockBytes;
}

void DemotedTokens::write(uint32_t head, bool value, uint64_t token,
                          const float *row) {
  numerics::writePageTokens(row, token % pageTokens_, 1,
                            value ? encoding_.value : encoding_.key, headDim_,
                            pageTokens_, blockOf(head, value, token));
}

void DemotedTokens::read(uint32_t head, bool value, uint64_t token,
                         float *row) const {
  numerics::readPageTokens(blockOf(head, value, token), token % pageTokens_, 1,
                           value ? encoding_.value : encoding_.key, headDim_,
                           pageTokens_, row);
}

} // namespace rt
} // namespace kvc
