//===- Cache.h - The paged compressed KV cache ------------------*- C++ -*-===//
//
// One cache: per layer a PagePool (bookkeeping shared by the K and V pools),
// the page-table matrix [max_sequences][max_pages_per_sequence] (host, plus
// a mirror in backend memory on device backends), and the token count of
// every sequence slot. The arena holds the K/V pools and residual staging of
// every layer (see Geometry.h for where).
//
// Every mutating operation first validates and reserves everything it needs
// (pages, a sequence slot), then mutates; only a backend (CUDA) failure can
// interrupt the second phase, and it rolls the bookkeeping back.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_RUNTIME_LIB_CACHE_H
#define KVC_RUNTIME_LIB_CACHE_H

#include "Backend.h"
#include "Demote.h"
#include "Geometry.h"
#include "HostArray.h"
#include "PagePool.h"

#include <memory>
#include <vector>

namespace kvc {
namespace rt {

/// Byte ranges of a block occupied by tokens [first, first + n) of a page.
/// The layout stores both regions token-major (layout.md section 4: rows
/// [first, first + n) are one contiguous slice of the codes region and of
/// the params region), so each range is proportional to the token range.
/// Used to copy only what writePageTokens wrote to device memory.
struct ByteRange {
  size_t offset = 0;
  size_t bytes = 0;
};
void pageTokenRanges(const numerics::BlockLayout &layout, unsigned pageTokens,
                     size_t first, size_t count, ByteRange *codes,
                     ByteRange *params);

class Cache {
public:
  static Status create(const kvc_rt_cache_config &config,
                       std::unique_ptr<Cache> *out);
  ~Cache();
  Cache(const Cache &) = delete;
  Cache &operator=(const Cache &) = delete;

  const CacheGeometry &geometry() const { return geometry_; }
  Backend &backend() const { return *backend_; }
  /// The configuration with `encodings` pointing to the cache's copy.
  kvc_rt_cache_config config() const;

  // Sequences (Cache.cpp).
  Status createSequence(kvc_rt_seq *out);
  Status forkSequence(kvc_rt_seq parent, kvc_rt_seq *out);
  Status freeSequence(kvc_rt_seq seq);
  Status append(kvc_rt_seq seq, uint32_t layer, const kvc_rt_tokens &tokens);
  /// kvc_rt_reserve_append (Append.cpp).
  Status reserveAppend(const kvc_rt_seq *seqs, uint32_t count, uint32_t layer,
                       uint32_t numTokens, kvc_rt_append_range *out);

  // Eviction (Evict.cpp).
  /// `headBudgets`: kv_heads entries, or nullptr (every head: the policy's
  /// budget). `demote`: keep evicted tokens at this encoding (two-tier),
  /// or nullptr to drop them.
  Status evict(kvc_rt_seq seq, uint32_t layer,
               const kvc_rt_evict_policy &policy, const uint32_t *headBudgets,
               const kvc_rt_encoding *demote, const float *scores,
               uint64_t numTokens);
  Status liveTokens(kvc_rt_seq seq, uint32_t layer, uint32_t head,
                    uint8_t *out, uint64_t n) const;
  /// Bytes between two heads' bitmaps of one (sequence, layer).
  size_t bitmapHeadBytes() const { return bitmapHeadBytes_; }

  // Queries (CacheRead.cpp).
  Status sequenceLength(kvc_rt_seq seq, uint32_t layer, uint64_t *out) const;
  /// kvc_rt_cache_check_layer_heads (count 1: kvc_rt_cache_check_layer).
  Status checkLayerHeads(uint32_t layer, const kvc_rt_encoding *encodings,
                         uint32_t count, uint32_t kvHeads, uint32_t headDim,
                         uint32_t pageTokens) const;
  Status layerView(uint32_t layer, kvc_rt_layer_view *out) const;
  Status headView(uint32_t layer, uint32_t head, kvc_rt_head_view *out) const;
  Status sequenceView(kvc_rt_seq seq, uint32_t layer,
                      kvc_rt_sequence_view *out) const;
  Status gather(kvc_rt_seq seq, uint32_t layer, uint32_t head, float *keys,
                float *values, uint64_t capacityTokens) const;
  Status readBlock(uint32_t layer, uint32_t page, uint32_t head, uint32_t pool,
                   void *dst, uint64_t dstBytes) const;
  Status stats(kvc_rt_cache_stats *out) const;
  Status layerStats(uint32_t layer, kvc_rt_layer_stats *out) const;
  Status verify() const;

private:
  struct Layer {
    const LayerGeometry *geo = nullptr;
    PagePool pool;
    HostArray<int32_t> table;   ///< [max_sequences][max_pages_per_sequence]
    HostArray<uint32_t> tokens; ///< per slot; 0 for dead slots
    uint8_t *kPool = nullptr;
    uint8_t *vPool = nullptr;
    uint8_t *kResidual = nullptr;
    uint8_t *vResidual = nullptr;
    int32_t *deviceTable = nullptr; ///< mirror, or == table.data() on CPU
    uint64_t totalTokens = 0;       ///< sum over live slots
    uint64_t totalCompressed = 0;
    /// Per slot: the live bitmaps of all heads (kv_heads * bitmapHeadBytes_
    /// bytes, malloc'ed at the slot's first eviction; bits >= n are 1, so
    /// appended tokens are live without touching them), or nullptr while
    /// every token is live.
    HostArray<uint8_t *> liveBits;
    HostArray<uint64_t> evicted; ///< per slot, summed over heads
    uint64_t totalEvicted = 0;   ///< sum over live slots
    /// Per slot: the demoted tokens of a two-tier eviction (Demote.h), or
    /// nullptr while the slot drops nothing at a lower precision. Every
    /// evicted token of a slot that has one is demoted.
    HostArray<DemotedTokens *> demoted;
    uint64_t totalDemoted = 0;      ///< tokens over heads, live slots
    uint64_t totalDemotedBytes = 0; ///< their pages' bytes
  };

  /// One side (K or V) of one KV head of a layer, to write loops once for
  /// both sides.
  struct SideRef {
    numerics::SideEncoding encoding;
    numerics::BlockLayout block; ///< this head's
    size_t blockOffset;          ///< of this head's block within a page
    uint8_t *pool;
    size_t pageBytes;
    uint8_t *residual; ///< staging of slot 0, head 0 (nullptr if R == 0)
    size_t residualHeadBytes;

    /// This head's block in pool page `page`.
    uint8_t *blockOf(int32_t page) const {
      return pool + size_t(page) * pageBytes + blockOffset;
    }
  };

  Cache() = default;
  SideRef side(const Layer &layer, bool value, uint32_t head) const;
  Status checkHeadIndex(uint32_t head) const;

  Status resolve(kvc_rt_seq seq, uint32_t *slot) const;
  Status checkLayerIndex(uint32_t layer) const;
  static kvc_rt_seq makeId(uint32_t slot, uint32_t generation) {
    return (uint64_t(generation) << 32) | slot;
  }

  int32_t *row(Layer &layer, uint32_t slot) {
    return layer.table.data() +
           size_t{slot} * geometry_.maxPagesPerSequence;
  }
  const int32_t *row(const Layer &layer, uint32_t slot) const {
    return layer.table.data() +
           size_t{slot} * geometry_.maxPagesPerSequence;
  }
  uint64_t compressedCount(const Layer &layer, uint64_t tokens) const;
  uint32_t pagesFor(const Layer &layer, uint64_t tokens) const;
  uint8_t *residualOf(const SideRef &side, uint32_t slot, uint32_t head) const;
  /// True when page `page` of a slot holds no live token in any head: all
  /// its T positions are below `n` and evicted. Never true without bitmaps.
  bool pageDead(const Layer &layer, uint32_t slot, uint64_t page,
                uint64_t n) const;
  /// Whether token t of (slot, head) is live.
  bool tokenLive(const Layer &layer, uint32_t slot, uint32_t head,
                 uint64_t t) const {
    const uint8_t *bits = layer.liveBits[slot];
    return !bits ||
           (bits[head * bitmapHeadBytes_ + t / 8] >> (t % 8) & 1) != 0;
  }
  /// verify's checks of one slot's bitmaps against its evicted count.
  bool verifyBitmaps(const Layer &layer, uint32_t slot, uint64_t n,
                     std::string *error) const;
  /// Decodes token t of (slot, head), one side, as readers see it now:
  /// from its page when compressed, else from the fp16 staging (host
  /// backends only; the page must not be a hole).
  void decodeToken(const Layer &layer, uint32_t slot, uint32_t head,
                   bool value, uint64_t t, uint64_t n, float *out) const;
  /// Checks the two-tier eviction invariants of one slot.
  bool verifyDemoted(const Layer &layer, uint32_t slot, uint64_t n,
                     std::string *error) const;
  /// Frees a slot's bitmaps and its eviction counts.
  void dropEvictionState(Layer &layer, uint32_t slot);
  /// Copies page-table entries [first, first + count) of a slot's row to the
  /// mirror (no-op without one).
  Status syncMirror(Layer &layer, uint32_t slot, uint32_t first,
                    uint32_t count);

  // append's phases (Append.cpp).
  /// An append of tokens n0 .. n1-1 to one sequence: what it compresses
  /// (c0 .. c1-1), the pages it adds (p0 .. p1-1) and whether it copies a
  /// shared partial page first (copy-on-write).
  struct AppendPlan {
    uint32_t layer = 0, slot = 0;
    uint64_t n0 = 0, n1 = 0, c0 = 0, c1 = 0;
    uint32_t p0 = 0, p1 = 0;
    bool cow = false;
    uint32_t cowIndex = 0;
    uint64_t neededPages = 0;
    int32_t sharedPage = -1, cowPage = -1; ///< set by takeAppendPages
  };
  /// Every check of an append of `numTokens`, and the pages it needs.
  Status planAppend(kvc_rt_seq seq, uint32_t layer, uint64_t numTokens,
                    AppendPlan *plan);
  Status checkFreePages(uint32_t layer, uint64_t needed) const;
  /// Takes the plan's pages (zeroed; the copy-on-write copy) and updates the
  /// page-table mirror; gives them back itself if the backend fails.
  Status takeAppendPages(AppendPlan &plan);
  /// Undoes takeAppendPages.
  void releaseAppendPages(const AppendPlan &plan);
  /// Sets the sequence's count to n1 (after its tokens are written, or are
  /// to be written by generated code).
  void commitAppend(const AppendPlan &plan);
  Status writeCompressed(Layer &layer, uint32_t slot, bool value,
                         const kvc_rt_tokens &in, uint64_t headStride,
                         uint64_t tokenStride, uint64_t n0, uint64_t c0,
                         uint64_t c1);
  Status writeResidual(Layer &layer, uint32_t slot, bool value,
                       const kvc_rt_tokens &in, uint64_t headStride,
                       uint64_t tokenStride, uint64_t n0, uint64_t n1,
                       uint64_t c1);

  CacheGeometry geometry_;
  std::vector<kvc_rt_encoding> encodings_;
  std::unique_ptr<Backend> backend_;
  uint8_t *arena_ = nullptr;
  std::vector<Layer> layers_;

  // Sequence slots: the id of slot s is makeId(s, generation_[s]) while
  // live_[s]; freeing bumps the generation, so an old id never matches again
  // (a slot whose generation would wrap is retired instead of reused).
  HostArray<uint32_t> generation_;
  HostArray<uint32_t> live_;
  HostArray<uint32_t> freeSlots_;
  uint32_t freeSlotCount_ = 0;
  uint32_t liveCount_ = 0;
  uint32_t retiredCount_ = 0;
  HostArray<int32_t> emptyRow_; ///< max_pages_per_sequence entries of -1
  size_t bitmapHeadBytes_ = 0;  ///< ceil(max_tokens / 8) rounded up to 8

  // Host scratch, allocated once (sizes in HostMetadataSizes::scratchBytes).
  mutable HostArray<float> scratchTokens_; ///< [T][D] fp32
  mutable HostArray<uint16_t> scratchHalf_; ///< one head's residual rows
  mutable HostArray<uint8_t> scratchBlock_; ///< the largest block
};

/// The Cache behind a live handle, or nullptr for NULL, destroyed or foreign
/// handles (CApi.cpp). For the binding (Binding.cpp), which allocates in the
/// cache's backend memory.
Cache *liveCache(const kvc_rt_cache *cache);

} // namespace rt
} // namespace kvc

#endif // KVC_RUNTIME_LIB_CACHE_H
