//===- CacheRead.cpp - Views, gather, stats and invariant checks ----------===//

#include "Cache.h"

#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Layout.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace kvc {
namespace rt {

namespace {
kvc_rt_block_layout toC(const numerics::BlockLayout &b, size_t pageBytes) {
  kvc_rt_block_layout out;
  out.block_bytes = b.blockBytes;
  out.codes_bytes = b.codesBytes;
  out.params_offset = b.paramsOffset;
  out.params_bytes = b.paramsBytes;
  out.page_bytes = pageBytes;
  return out;
}

Status internal(std::string message) {
  return Status::error(KVC_RT_ERROR_INTERNAL, std::move(message));
}
} // namespace

Status Cache::sequenceLength(kvc_rt_seq seq, uint32_t layer,
                             uint64_t *out) const {
  uint32_t slot;
  KVC_RT_RETURN_IF_ERROR(resolve(seq, &slot));
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layer));
  *out = layers_[layer].tokens[slot];
  return Status::ok();
}

Status Cache::checkLayerHeads(uint32_t layer,
                              const kvc_rt_encoding *encodings, uint32_t count,
                              uint32_t kvHeads, uint32_t headDim,
                              uint32_t pageTokens) const {
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layer));
  if (count != 1 && count != kvHeads)
    return invalidArgument("count must be 1 (one encoding for every head) or "
                           "kv_heads (" +
                           std::to_string(kvHeads) + "), got " +
                           std::to_string(count));
  const kvc_rt_cache_config &cfg = geometry_.config;
  if (kvHeads != cfg.kv_heads || headDim != cfg.head_dim)
    return Status::error(KVC_RT_ERROR_SHAPE_MISMATCH,
                         "expected " + std::to_string(kvHeads) +
                             " kv heads of dimension " +
                             std::to_string(headDim) + ", the cache has " +
                             std::to_string(cfg.kv_heads) + " of dimension " +
                             std::to_string(cfg.head_dim));
  std::vector<numerics::CacheEncoding> expected(count);
  for (uint32_t i = 0; i < count; ++i) {
    Status s = convertEncoding(encodings[i], &expected[i]);
    if (!s.isOk())
      return invalidArgument("encodings[" + std::to_string(i) +
                             "]: " + s.message());
  }
  const LayerGeometry &lg = *layers_[layer].geo;
  for (uint32_t h = 0; h < cfg.kv_heads; ++h) {
    const numerics::CacheEncoding &want = expected[count == 1 ? 0 : h];
    const numerics::CacheEncoding &actual = lg.head(h).encoding;
    if (want != actual)
      return Status::error(KVC_RT_ERROR_ENCODING_MISMATCH,
                           "layer " + std::to_string(layer) + " head " +
                               std::to_string(h) + " is encoded as {" +
                               actual.toString() + "}, expected {" +
                               want.toString() + "}");
  }
  if (pageTokens != cfg.page_tokens)
    return Status::error(KVC_RT_ERROR_ENCODING_MISMATCH,
                         "pages hold " + std::to_string(cfg.page_tokens) +
                             " tokens, expected " + std::to_string(pageTokens));
  return Status::ok();
}

Status Cache::layerView(uint32_t layerIndex, kvc_rt_layer_view *out) const {
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layerIndex));
  const Layer &layer = layers_[layerIndex];
  const LayerGeometry &lg = *layer.geo;
  const kvc_rt_cache_config &cfg = geometry_.config;
  const HeadGeometry head0 = lg.head(0);
  kvc_rt_layer_view v{};
  v.encoding = head0.cEncoding;
  v.kv_heads = cfg.kv_heads;
  v.head_dim = cfg.head_dim;
  v.page_tokens = cfg.page_tokens;
  v.residual = lg.residual();
  v.num_pages = cfg.pages_per_layer;
  v.max_sequences = cfg.max_sequences;
  v.max_pages_per_sequence = geometry_.maxPagesPerSequence;
  v.uniform_heads = lg.uniformHeads ? 1 : 0;
  v.k = toC(head0.k, lg.kPageBytes);
  v.v = toC(head0.v, lg.vPageBytes);
  v.k_pool = layer.kPool;
  v.v_pool = layer.vPool;
  v.k_residual = layer.kResidual;
  v.v_residual = layer.vResidual;
  v.residual_head_bytes = lg.residualHeadBytes;
  v.page_tables = layer.table.data();
  v.page_tables_device = layer.deviceTable;
  *out = v;
  return Status::ok();
}

Status Cache::headView(uint32_t layerIndex, uint32_t head,
                       kvc_rt_head_view *out) const {
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layerIndex));
  KVC_RT_RETURN_IF_ERROR(checkHeadIndex(head));
  const LayerGeometry &lg = *layers_[layerIndex].geo;
  const HeadGeometry hg = lg.head(head);
  kvc_rt_head_view v{};
  v.encoding = hg.cEncoding;
  v.k = toC(hg.k, lg.kPageBytes);
  v.v = toC(hg.v, lg.vPageBytes);
  v.k_block_offset = hg.kBlockOffset;
  v.v_block_offset = hg.vBlockOffset;
  *out = v;
  return Status::ok();
}

Status Cache::sequenceView(kvc_rt_seq seq, uint32_t layerIndex,
                           kvc_rt_sequence_view *out) const {
  uint32_t slot;
  KVC_RT_RETURN_IF_ERROR(resolve(seq, &slot));
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layerIndex));
  const Layer &layer = layers_[layerIndex];
  const LayerGeometry &lg = *layer.geo;
  const kvc_rt_cache_config &cfg = geometry_.config;
  const uint64_t n = layer.tokens[slot];
  const size_t rowOffset = size_t{slot} * geometry_.maxPagesPerSequence;
  kvc_rt_sequence_view v{};
  v.num_tokens = n;
  v.compressed_tokens = compressedCount(layer, n);
  v.residual_tokens = n - v.compressed_tokens;
  v.num_pages = pagesFor(layer, n);
  v.slot = slot;
  v.page_table = layer.table.data() + rowOffset;
  v.page_table_device = layer.deviceTable + rowOffset;
  v.k_pool = layer.kPool;
  v.v_pool = layer.vPool;
  if (lg.residualHeadBytes) {
    v.k_residual = residualOf(side(layer, false, 0), slot, 0);
    v.v_residual = residualOf(side(layer, true, 0), slot, 0);
  }
  v.residual_head_bytes = lg.residualHeadBytes;
  const HeadGeometry head0 = lg.head(0);
  v.k = toC(head0.k, lg.kPageBytes);
  v.v = toC(head0.v, lg.vPageBytes);
  v.kv_heads = cfg.kv_heads;
  v.head_dim = cfg.head_dim;
  v.page_tokens = cfg.page_tokens;
  v.residual = lg.residual();
  v.live_bitmap = layer.liveBits[slot];
  v.live_bitmap_head_bytes = bitmapHeadBytes_;
  v.evicted_tokens = layer.evicted[slot];
  if (const DemotedTokens *store = layer.demoted[slot]) {
    v.demoted_pages = store->pageTable();
    v.demote = store->encoding();
  }
  *out = v;
  return Status::ok();
}

Status Cache::gather(kvc_rt_seq seq, uint32_t layerIndex, uint32_t head,
                     float *keys, float *values,
                     uint64_t capacityTokens) const {
  uint32_t slot;
  KVC_RT_RETURN_IF_ERROR(resolve(seq, &slot));
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layerIndex));
  KVC_RT_RETURN_IF_ERROR(checkHeadIndex(head));
  const kvc_rt_cache_config &cfg = geometry_.config;
  const Layer &layer = layers_[layerIndex];
  const uint64_t n = layer.tokens[slot];
  if ((keys || values) && capacityTokens < n)
    return Status::error(KVC_RT_ERROR_CAPACITY_EXCEEDED,
                         "the output holds " + std::to_string(capacityTokens) +
                             " tokens but the sequence has " +
                             std::to_string(n));
  const uint32_t D = cfg.head_dim;
  const uint32_t T = cfg.page_tokens;
  const uint64_t c = compressedCount(layer, n);
  const bool direct = backend_->hostAccessible();
  const int32_t *entries = row(layer, slot);
  for (int v = 0; v < 2; ++v) {
    float *out = v == 1 ? values : keys;
    if (!out)
      continue;
    const SideRef sr = side(layer, v == 1, head);
    for (uint64_t t0 = 0; t0 < c;) {
      const uint64_t page = t0 / T;
      const uint64_t first = t0 % T;
      const uint64_t count = std::min<uint64_t>(c, (page + 1) * T) - t0;
      if (entries[page] == KVC_RT_PAGE_HOLE) {
        t0 += count; // every token evicted: NaN rows below
        continue;
      }
      const uint8_t *block = sr.blockOf(entries[page]);
      if (!direct) {
        // Fetch only the bytes of these tokens, at their offsets.
        uint8_t *staging = scratchBlock_.data();
        ByteRange codes, params;
        pageTokenRanges(sr.block, T, first, count, &codes, &params);
        KVC_RT_RETURN_IF_ERROR(backend_->copyToHost(
            staging + codes.offset, block + codes.offset, codes.bytes));
        KVC_RT_RETURN_IF_ERROR(backend_->copyToHost(
            staging + params.offset, block + params.offset, params.bytes));
        block = staging;
      }
      numerics::readPageTokens(block, first, count, sr.encoding, D, T,
                               out + t0 * D);
      t0 += count;
    }
    const uint64_t rows = n - c;
    if (rows) {
      const uint8_t *residual = residualOf(sr, slot, head);
      const uint16_t *halves = reinterpret_cast<const uint16_t *>(residual);
      if (!direct) {
        KVC_RT_RETURN_IF_ERROR(backend_->copyToHost(scratchHalf_.data(),
                                                    residual, rows * D * 2));
        halves = scratchHalf_.data();
      }
      for (uint64_t i = 0; i < rows * D; ++i)
        out[c * D + i] = numerics::halfToFloat(halves[i]);
    }
    // Evicted tokens: their demoted rows (two-tier), else NaN.
    const DemotedTokens *store = layer.demoted[slot];
    if (layer.liveBits[slot])
      for (uint64_t t = 0; t < n; ++t) {
        if (tokenLive(layer, slot, head, t))
          continue;
        if (store)
          store->read(head, v == 1, t, out + t * D);
        else
          std::fill(out + t * D, out + (t + 1) * D,
                    std::numeric_limits<float>::quiet_NaN());
      }
  }
  return Status::ok();
}

Status Cache::readBlock(uint32_t layerIndex, uint32_t page, uint32_t head,
                        uint32_t pool, void *dst, uint64_t dstBytes) const {
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layerIndex));
  const kvc_rt_cache_config &cfg = geometry_.config;
  if (pool != KVC_RT_POOL_K && pool != KVC_RT_POOL_V)
    return invalidArgument("unknown pool " + std::to_string(pool));
  if (page >= cfg.pages_per_layer)
    return invalidArgument("page " + std::to_string(page) +
                           " is out of range (pools hold " +
                           std::to_string(cfg.pages_per_layer) + " pages)");
  KVC_RT_RETURN_IF_ERROR(checkHeadIndex(head));
  if (!dst)
    return nullPointer("dst");
  if (layers_[layerIndex].pool.refCount(int32_t(page)) == 0)
    return invalidArgument("page " + std::to_string(page) +
                           " is free (never used, or released by eviction or "
                           "a free): its bytes belong to no sequence");
  const SideRef sr = side(layers_[layerIndex], pool == KVC_RT_POOL_V, head);
  const size_t bytes = sr.block.blockBytes;
  if (dstBytes < bytes)
    return Status::error(KVC_RT_ERROR_CAPACITY_EXCEEDED,
                         "dst holds " + std::to_string(dstBytes) +
                             " bytes, head " + std::to_string(head) +
                             "'s block has " + std::to_string(bytes));
  return backend_->copyToHost(dst, sr.blockOf(int32_t(page)), bytes);
}

Status Cache::layerStats(uint32_t layerIndex, kvc_rt_layer_stats *out) const {
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layerIndex));
  const Layer &layer = layers_[layerIndex];
  const LayerGeometry &lg = *layer.geo;
  kvc_rt_layer_stats s{};
  s.pages_total = layer.pool.capacity();
  s.pages_used = layer.pool.usedCount();
  s.pages_free = layer.pool.freeCount();
  s.pages_shared = layer.pool.sharedCount();
  s.k_page_bytes_used = uint64_t(s.pages_used) * lg.kPageBytes;
  s.v_page_bytes_used = uint64_t(s.pages_used) * lg.vPageBytes;
  s.k_residual_bytes = uint64_t(liveCount_) * lg.residualSlotBytes;
  s.v_residual_bytes = s.k_residual_bytes;
  s.tokens = layer.totalTokens;
  s.compressed_tokens = layer.totalCompressed;
  s.tokens_evicted = layer.totalEvicted;
  s.tokens_live = layer.totalTokens * geometry_.config.kv_heads -
                  layer.totalEvicted;
  s.tokens_demoted = layer.totalDemoted;
  s.demoted_bytes = layer.totalDemotedBytes;
  *out = s;
  return Status::ok();
}

Status Cache::stats(kvc_rt_cache_stats *out) const {
  kvc_rt_cache_stats s{};
  s.live_sequences = liveCount_;
  s.max_sequences = geometry_.config.max_sequences;
  for (uint32_t l = 0; l < layers_.size(); ++l) {
    kvc_rt_layer_stats ls;
    KVC_RT_RETURN_IF_ERROR(layerStats(l, &ls));
    s.pages_used += ls.pages_used;
    s.pages_free += ls.pages_free;
    s.k_bytes_used += ls.k_page_bytes_used + ls.k_residual_bytes;
    s.v_bytes_used += ls.v_page_bytes_used + ls.v_residual_bytes;
    s.demoted_bytes += ls.demoted_bytes;
  }
  s.footprint = geometry_.footprint();
  *out = s;
  return Status::ok();
}

bool Cache::verifyBitmaps(const Layer &layer, uint32_t slot, uint64_t n,
                          std::string *error) const {
  const uint8_t *bits = layer.liveBits[slot];
  if (!bits) {
    if (layer.evicted[slot] != 0) {
      *error = "evicted tokens without a bitmap";
      return false;
    }
    return true;
  }
  uint64_t dead = 0;
  for (uint32_t h = 0; h < geometry_.config.kv_heads; ++h) {
    const uint8_t *head = bits + size_t{h} * bitmapHeadBytes_;
    for (uint64_t t = 0; t < uint64_t(bitmapHeadBytes_) * 8; ++t) {
      const bool live = (head[t / 8] >> (t % 8) & 1) != 0;
      if (t >= n && !live) {
        *error = "head " + std::to_string(h) + " bit " + std::to_string(t) +
                 " at or past n = " + std::to_string(n) +
                 " is 0 (new tokens would be born dead)";
        return false;
      }
      dead += t < n && !live;
    }
  }
  if (dead != layer.evicted[slot]) {
    *error = "the evicted count is " + std::to_string(layer.evicted[slot]) +
             " but the bitmaps have " + std::to_string(dead) + " zero bits";
    return false;
  }
  return true;
}

Status Cache::verify() const {
  const kvc_rt_cache_config &cfg = geometry_.config;
  const uint32_t maxPages = geometry_.maxPagesPerSequence;

  // Sequence slots: live, free and retired partition the slots.
  uint32_t live = 0;
  std::vector<char> isFree(cfg.max_sequences, 0);
  for (uint32_t s = 0; s < cfg.max_sequences; ++s)
    live += live_[s] ? 1 : 0;
  if (live != liveCount_)
    return internal("live sequence count " + std::to_string(liveCount_) +
                    " but " + std::to_string(live) + " live slots");
  for (uint32_t i = 0; i < freeSlotCount_; ++i) {
    const uint32_t s = freeSlots_[i];
    if (s >= cfg.max_sequences || isFree[s] || live_[s])
      return internal("free slot list entry " + std::to_string(i) +
                      " is out of range, repeated or live");
    isFree[s] = 1;
  }
  uint32_t retired = 0;
  for (uint32_t s = 0; s < cfg.max_sequences; ++s)
    if (!live_[s] && !isFree[s]) {
      if (generation_[s] != 0)
        return internal("slot " + std::to_string(s) +
                        " is neither live, free nor retired");
      ++retired;
    }
  if (retired != retiredCount_ ||
      live + freeSlotCount_ + retired != cfg.max_sequences)
    return internal("sequence slots do not add up");

  for (uint32_t l = 0; l < layers_.size(); ++l) {
    const Layer &layer = layers_[l];
    const std::string where = "layer " + std::to_string(l) + ": ";
    const uint32_t numPages = layer.pool.capacity();
    std::vector<uint32_t> refs(numPages, 0);
    std::vector<uint32_t> lastRow(numPages, UINT32_MAX);
    uint64_t tokens = 0, compressed = 0, evicted = 0, demoted = 0,
             demotedBytes = 0;
    for (uint32_t s = 0; s < cfg.max_sequences; ++s) {
      const uint64_t n = layer.tokens[s];
      const int32_t *entries = row(layer, s);
      if (!live_[s] && (n != 0 || layer.liveBits[s] || layer.evicted[s] ||
                        layer.demoted[s]))
        return internal(where + "free slot " + std::to_string(s) +
                        " holds tokens or eviction state");
      std::string bitmapError;
      if (!verifyBitmaps(layer, s, n, &bitmapError) ||
          !verifyDemoted(layer, s, n, &bitmapError))
        return internal(where + "slot " + std::to_string(s) + ": " +
                        bitmapError);
      if (const DemotedTokens *store = layer.demoted[s]) {
        demoted += store->demotedTokens;
        demotedBytes += uint64_t(store->pagesHeld()) * store->pageBytes();
      }
      evicted += layer.evicted[s];
      if (n > cfg.max_tokens)
        return internal(where + "slot " + std::to_string(s) +
                        " exceeds max_tokens");
      const uint32_t pages = live_[s] ? pagesFor(layer, n) : 0;
      for (uint32_t i = 0; i < maxPages; ++i) {
        const int32_t e = entries[i];
        if (i >= pages) {
          if (e != -1)
            return internal(where + "slot " + std::to_string(s) +
                            " has a page-table entry past its pages");
          continue;
        }
        const bool dead = pageDead(layer, s, i, n);
        if (dead != (e == KVC_RT_PAGE_HOLE))
          return internal(where + "slot " + std::to_string(s) + " page " +
                          std::to_string(i) +
                          (dead ? " has no live token but is not a hole"
                                : " is a hole but holds live tokens"));
        if (dead)
          continue;
        if (e < 0 || uint32_t(e) >= numPages)
          return internal(where + "slot " + std::to_string(s) +
                          " names page " + std::to_string(e) +
                          ", out of range");
        if (lastRow[e] == s)
          return internal(where + "page " + std::to_string(e) +
                          " appears twice in the page table of slot " +
                          std::to_string(s));
        lastRow[e] = s;
        ++refs[e];
      }
      tokens += n;
      compressed += compressedCount(layer, n);
    }
    uint32_t used = 0, shared = 0;
    for (uint32_t p = 0; p < numPages; ++p) {
      if (refs[p] != layer.pool.refCount(int32_t(p)))
        return internal(where + "page " + std::to_string(p) +
                        " has reference count " +
                        std::to_string(layer.pool.refCount(int32_t(p))) +
                        " but " + std::to_string(refs[p]) +
                        " page-table entries");
      used += refs[p] > 0;
      shared += refs[p] > 1;
    }
    if (used != layer.pool.usedCount() || shared != layer.pool.sharedCount())
      return internal(where + "used/shared page counters are wrong");
    std::vector<char> seen(numPages, 0);
    for (uint32_t i = 0; i < layer.pool.freeCount(); ++i) {
      const int32_t p = layer.pool.freeStack()[i];
      if (p < 0 || uint32_t(p) >= numPages || seen[p] || refs[p] != 0)
        return internal(where + "free list entry " + std::to_string(i) +
                        " is out of range, repeated or in use");
      seen[p] = 1;
    }
    if (tokens != layer.totalTokens || compressed != layer.totalCompressed ||
        evicted != layer.totalEvicted || demoted != layer.totalDemoted ||
        demotedBytes != layer.totalDemotedBytes)
      return internal(where + "token totals are wrong");
    if (geometry_.deviceMirror) {
      std::vector<int32_t> mirror(layer.table.size());
      KVC_RT_RETURN_IF_ERROR(backend_->copyToHost(
          mirror.data(), reinterpret_cast<const uint8_t *>(layer.deviceTable),
          mirror.size() * sizeof(int32_t)));
      for (size_t i = 0; i < mirror.size(); ++i)
        if (mirror[i] != layer.table[i])
          return internal(where + "page-table mirror differs at entry " +
                          std::to_string(i));
    }
  }
  return Status::ok();
}

} // namespace rt
} // namespace kvc
