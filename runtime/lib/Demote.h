//===- Demote.h - Evicted tokens kept at a cheaper encoding -----*- C++ -*-===//
//
// Two-tier eviction (kvc_rt_evict_demote): a token a policy evicts is not
// dropped but re-encoded at a cheaper, per-token encoding, so attention
// still sees an approximation of it. One DemotedTokens holds the demoted
// rows of one (sequence, layer): host pages that cover the same position
// ranges as the primary pages (page p: positions [pT, (p+1)T)), allocated
// when the first token of the range is demoted and freed with the sequence.
// A page holds the K blocks of KV heads 0..H-1, then their V blocks, each a
// numerics BlockLayout of the demotion encoding (docs/layout.md 5.2).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_RUNTIME_LIB_DEMOTE_H
#define KVC_RUNTIME_LIB_DEMOTE_H

#include "Status.h"
#include "kvc_runtime.h"

#include "kvc/Numerics/Encoding.h"
#include "kvc/Numerics/Layout.h"

#include <cstdint>

namespace kvc {
namespace rt {

/// INVALID_ARGUMENT unless `side` can hold one token on its own (fp16, fp8
/// or token-axis quantization, valid for head_dim and page_tokens): a
/// demoted token is written alone, never with its neighbours.
Status checkDemoteSide(const numerics::SideEncoding &side, const char *name,
                       unsigned headDim, unsigned pageTokens);

class DemotedTokens {
public:
  /// Empty (no page) store for `demote` (key and value; residual ignored),
  /// already validated with checkDemoteSide. nullptr on out of memory.
  static DemotedTokens *create(const kvc_rt_encoding &demote,
                               const numerics::CacheEncoding &encoding,
                               uint32_t kvHeads, uint32_t headDim,
                               uint32_t pageTokens, uint32_t maxPages);
  ~DemotedTokens();
  DemotedTokens(const DemotedTokens &) = delete;
  DemotedTokens &operator=(const DemotedTokens &) = delete;

  /// A deep copy (fork), or nullptr on out of memory.
  DemotedTokens *clone() const;

  /// Whether `other` names the same encodings (residual ignored).
  bool sameEncoding(const kvc_rt_encoding &other) const;
  const kvc_rt_encoding &encoding() const { return cEncoding_; }

  /// Page p (nullptr while none of its tokens is demoted).
  uint8_t *page(uint32_t p) const { return pages_[p]; }
  /// The page-pointer table, maxPages entries.
  const uint8_t *const *pageTable() const { return pages_; }
  uint32_t maxPages() const { return maxPages_; }
  /// Allocates page p zero-filled if it does not exist; false on out of
  /// memory. `created` tells whether it was new (for rollback).
  bool ensurePage(uint32_t p, bool *created);
  /// Frees page p (rollback of ensurePage).
  void dropPage(uint32_t p);

  /// Encodes `row` [D] as token `token` of KV head `head` (K or V side).
  void write(uint32_t head, bool value, uint64_t token, const float *row);
  /// Decodes token `token` of KV head `head` into `row` [D]; its page must
  /// exist.
  void read(uint32_t head, bool value, uint64_t token, float *row) const;

  size_t pageBytes() const { return pageBytes_; }
  uint32_t pagesHeld() const { return pagesHeld_; }
  /// Tokens demoted, summed over KV heads.
  uint64_t demotedTokens = 0;

private:
  DemotedTokens() = default;
  uint8_t *blockOf(uint32_t head, bool value, uint64_t token) const;

  kvc_rt_encoding cEncoding_{};
  numerics::CacheEncoding encoding_;
  numerics::BlockLayout kBlock_, vBlock_;
  uint32_t kvHeads_ = 0, headDim_ = 0, pageTokens_ = 0, maxPages_ = 0;
  size_t pageBytes_ = 0;
  uint32_t pagesHeld_ = 0;
  uint8_t **pages_ = nullptr;
};

} // namespace rt
} // namespace kvc

#endif // KVC_RUNTIME_LIB_DEMOTE_H
