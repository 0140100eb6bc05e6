//===- Cache.cpp - Creation, sequences and fork ---------------------------===//

#include "Cache.h"

#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Layout.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace kvc {
namespace rt {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the page layout and fp16 staging are little-endian; the "
              "host writes them natively");

void pageTokenRanges(const numerics::BlockLayout &layout, unsigned pageTokens,
                     size_t first, size_t count, ByteRange *codes,
                     ByteRange *params) {
  codes->offset = layout.codesOffset + layout.codesBytes / pageTokens * first;
  codes->bytes = layout.codesBytes / pageTokens * count;
  params->offset =
      layout.paramsOffset + layout.paramsBytes * first / pageTokens;
  params->bytes = layout.paramsBytes * count / pageTokens;
}

//===----------------------------------------------------------------------===//
// Creation
//===----------------------------------------------------------------------===//

Status Cache::create(const kvc_rt_cache_config &config,
                     std::unique_ptr<Cache> *out) {
  std::unique_ptr<Cache> cache(new Cache());
  KVC_RT_RETURN_IF_ERROR(buildGeometry(config, &cache->geometry_));
  const CacheGeometry &g = cache->geometry_;
  const kvc_rt_cache_config &c = g.config;
  cache->encodings_.assign(config.encodings,
                           config.encodings +
                               size_t{c.num_layers} * c.encodings_per_layer);

  switch (c.backend) {
  case KVC_RT_BACKEND_CPU:
  case KVC_RT_BACKEND_CPU_STAGED:
    cache->backend_ = createHostBackend(c.backend == KVC_RT_BACKEND_CPU_STAGED);
    break;
  case KVC_RT_BACKEND_CUDA:
    KVC_RT_RETURN_IF_ERROR(createCudaBackend(c.device, &cache->backend_));
    break;
  }
  KVC_RT_RETURN_IF_ERROR(cache->backend_->allocate(g.arenaBytes,
                                                   &cache->arena_));

  const Status hostOom = Status::error(
      KVC_RT_ERROR_OUT_OF_MEMORY,
      "cannot allocate " + std::to_string(g.host.totalBytes) +
          " bytes of host metadata");
  cache->layers_.resize(c.num_layers);
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    Layer &layer = cache->layers_[l];
    const LayerGeometry &lg = g.layers[l];
    layer.geo = &lg;
    KVC_RT_RETURN_IF_ERROR(layer.pool.init(c.pages_per_layer));
    if (!layer.table.allocate(g.host.perLayerTableEntries, -1) ||
        !layer.tokens.allocate(g.host.perLayerTokenCounts, 0) ||
        !layer.liveBits.allocate(c.max_sequences, nullptr) ||
        !layer.demoted.allocate(c.max_sequences, nullptr) ||
        !layer.evicted.allocate(c.max_sequences, 0))
      return hostOom;
    uint8_t *arena = cache->arena_;
    layer.kPool = arena + lg.kPoolOffset;
    layer.vPool = arena + lg.vPoolOffset;
    if (lg.residualHeadBytes) {
      layer.kResidual = arena + lg.kResidualOffset;
      layer.vResidual = arena + lg.vResidualOffset;
    }
    if (g.deviceMirror) {
      layer.deviceTable =
          reinterpret_cast<int32_t *>(arena + lg.deviceTableOffset);
      KVC_RT_RETURN_IF_ERROR(cache->backend_->copyToArena(
          reinterpret_cast<uint8_t *>(layer.deviceTable), layer.table.data(),
          layer.table.size() * sizeof(int32_t)));
    } else {
      layer.deviceTable = layer.table.data();
    }
  }

  if (!cache->generation_.allocate(c.max_sequences, 1) ||
      !cache->live_.allocate(c.max_sequences, 0) ||
      !cache->freeSlots_.allocate(c.max_sequences, 0) ||
      !cache->emptyRow_.allocate(g.maxPagesPerSequence, -1))
    return hostOom;
  // Slot 0 on top, so the first sequence gets slot 0.
  for (uint32_t i = 0; i < c.max_sequences; ++i)
    cache->freeSlots_[i] = c.max_sequences - 1 - i;
  cache->freeSlotCount_ = c.max_sequences;
  cache->bitmapHeadBytes_ = (ceilDiv(c.max_tokens, 8) + 7) / 8 * 8;

  size_t maxResidualHead = 0, maxBlock = 0;
  for (const LayerGeometry &lg : g.layers) {
    maxResidualHead = std::max(maxResidualHead, lg.residualHeadBytes);
    maxBlock = std::max(maxBlock, lg.maxBlockBytes);
  }
  if (!cache->scratchTokens_.allocate(size_t{c.page_tokens} * c.head_dim,
                                      0.0f) ||
      !cache->scratchHalf_.allocate(maxResidualHead / 2, 0) ||
      !cache->scratchBlock_.allocate(maxBlock, 0))
    return hostOom;
  KVC_RT_RETURN_IF_ERROR(cache->backend_->synchronize());
  *out = std::move(cache);
  return Status::ok();
}

Cache::~Cache() {
  for (Layer &layer : layers_) {
    for (size_t s = 0; s < layer.liveBits.size(); ++s)
      std::free(layer.liveBits[s]);
    for (size_t s = 0; s < layer.demoted.size(); ++s)
      delete layer.demoted[s];
  }
  if (arena_)
    backend_->release(arena_);
}

kvc_rt_cache_config Cache::config() const {
  kvc_rt_cache_config c = geometry_.config;
  c.encodings = encodings_.data();
  return c;
}

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

Status Cache::resolve(kvc_rt_seq seq, uint32_t *slot) const {
  const uint32_t s = static_cast<uint32_t>(seq & 0xFFFFFFFFu);
  const uint32_t generation = static_cast<uint32_t>(seq >> 32);
  if (seq == KVC_RT_SEQ_INVALID || s >= geometry_.config.max_sequences ||
      !live_[s] || generation_[s] != generation)
    return Status::error(KVC_RT_ERROR_INVALID_SEQUENCE,
                         "sequence " + std::to_string(seq) +
                             " is not a live sequence of this cache (freed "
                             "already, never created, or from another cache)");
  *slot = s;
  return Status::ok();
}

Status Cache::checkLayerIndex(uint32_t layer) const {
  if (layer >= geometry_.config.num_layers)
    return invalidArgument("layer " + std::to_string(layer) +
                           " is out of range (the cache has " +
                           std::to_string(geometry_.config.num_layers) +
                           " layers)");
  return Status::ok();
}

Status Cache::checkHeadIndex(uint32_t head) const {
  if (head >= geometry_.config.kv_heads)
    return invalidArgument("head " + std::to_string(head) +
                           " is out of range (the cache has " +
                           std::to_string(geometry_.config.kv_heads) +
                           " kv heads)");
  return Status::ok();
}

Cache::SideRef Cache::side(const Layer &layer, bool value,
                           uint32_t head) const {
  const LayerGeometry &lg = *layer.geo;
  const HeadGeometry hg = lg.head(head);
  if (value)
    return SideRef{hg.encoding.value, hg.v,           hg.vBlockOffset,
                   layer.vPool,       lg.vPageBytes,  layer.vResidual,
                   lg.residualHeadBytes};
  return SideRef{hg.encoding.key, hg.k,           hg.kBlockOffset,
                 layer.kPool,     lg.kPageBytes,  layer.kResidual,
                 lg.residualHeadBytes};
}

uint64_t Cache::compressedCount(const Layer &layer, uint64_t tokens) const {
  return numerics::compressedTokenCount(tokens, layer.geo->residual());
}

uint32_t Cache::pagesFor(const Layer &layer, uint64_t tokens) const {
  return static_cast<uint32_t>(
      ceilDiv(compressedCount(layer, tokens), geometry_.config.page_tokens));
}

uint8_t *Cache::residualOf(const SideRef &side, uint32_t slot,
                           uint32_t head) const {
  return side.residual +
         (size_t{slot} * geometry_.config.kv_heads + head) *
             side.residualHeadBytes;
}

bool Cache::pageDead(const Layer &layer, uint32_t slot, uint64_t page,
                     uint64_t n) const {
  const uint8_t *bits = layer.liveBits[slot];
  const uint64_t T = geometry_.config.page_tokens;
  if (!bits || (page + 1) * T > n)
    return false;
  // T is a multiple of 32: the page's bits are whole bytes.
  for (uint32_t h = 0; h < geometry_.config.kv_heads; ++h) {
    const uint8_t *head = bits + h * bitmapHeadBytes_;
    for (uint64_t i = page * T / 8; i < (page + 1) * T / 8; ++i)
      if (head[i])
        return false;
  }
  return true;
}

void Cache::dropEvictionState(Layer &layer, uint32_t slot) {
  std::free(layer.liveBits[slot]);
  layer.liveBits[slot] = nullptr;
  layer.totalEvicted -= layer.evicted[slot];
  layer.evicted[slot] = 0;
  if (DemotedTokens *store = layer.demoted[slot]) {
    layer.totalDemoted -= store->demotedTokens;
    layer.totalDemotedBytes -= uint64_t(store->pagesHeld()) * store->pageBytes();
    delete store;
    layer.demoted[slot] = nullptr;
  }
}

Status Cache::syncMirror(Layer &layer, uint32_t slot, uint32_t first,
                         uint32_t count) {
  if (!geometry_.deviceMirror || count == 0)
    return Status::ok();
  const size_t offset = size_t{slot} * geometry_.maxPagesPerSequence + first;
  return backend_->copyToArena(
      reinterpret_cast<uint8_t *>(layer.deviceTable + offset),
      layer.table.data() + offset, size_t{count} * sizeof(int32_t));
}

//===----------------------------------------------------------------------===//
// Sequences
//===----------------------------------------------------------------------===//

Status Cache::createSequence(kvc_rt_seq *out) {
  if (freeSlotCount_ == 0)
    return Status::error(
        KVC_RT_ERROR_CAPACITY_EXCEEDED,
        "all " + std::to_string(geometry_.config.max_sequences) +
            " sequence slots are in use (max_sequences)");
  const uint32_t slot = freeSlots_[--freeSlotCount_];
  live_[slot] = 1;
  ++liveCount_;
  *out = makeId(slot, generation_[slot]);
  return Status::ok();
}

Status Cache::forkSequence(kvc_rt_seq parent, kvc_rt_seq *out) {
  uint32_t from;
  KVC_RT_RETURN_IF_ERROR(resolve(parent, &from));
  if (freeSlotCount_ == 0)
    return Status::error(
        KVC_RT_ERROR_CAPACITY_EXCEEDED,
        "cannot fork: all " + std::to_string(geometry_.config.max_sequences) +
            " sequence slots are in use (max_sequences)");
  const uint32_t to = freeSlots_[freeSlotCount_ - 1];
  const uint32_t headDim = geometry_.config.head_dim;

  // The child's copies of the parent's bitmaps (host memory; the only
  // allocation of a fork).
  const size_t bitmapBytes = size_t{geometry_.config.kv_heads} *
                             bitmapHeadBytes_;
  std::vector<uint8_t *> childBits(layers_.size(), nullptr);
  std::vector<DemotedTokens *> childDemoted(layers_.size(), nullptr);
  auto freeChildBits = [&] {
    for (uint8_t *bits : childBits)
      std::free(bits);
    for (DemotedTokens *store : childDemoted)
      delete store;
  };
  for (size_t l = 0; l < layers_.size(); ++l) {
    const uint8_t *bits = layers_[l].liveBits[from];
    if (!bits)
      continue;
    childBits[l] = static_cast<uint8_t *>(std::malloc(bitmapBytes));
    if (!childBits[l]) {
      freeChildBits();
      return Status::error(KVC_RT_ERROR_OUT_OF_MEMORY,
                           "cannot allocate the fork's live bitmaps (" +
                               std::to_string(bitmapBytes) + " bytes)");
    }
    std::memcpy(childBits[l], bits, bitmapBytes);
    if (const DemotedTokens *store = layers_[l].demoted[from]) {
      childDemoted[l] = store->clone();
      if (!childDemoted[l]) {
        freeChildBits();
        return Status::error(KVC_RT_ERROR_OUT_OF_MEMORY,
                             "cannot copy the fork's demoted tokens (" +
                                 std::to_string(store->pagesHeld()) +
                                 " pages of " +
                                 std::to_string(store->pageBytes()) +
                                 " bytes)");
      }
    }
  }

  // Backend work first (it is the only part that can fail): the child's
  // page-table mirror row and its copy of the parent's residual rows.
  Status status;
  uint32_t layersDone = 0;
  for (Layer &layer : layers_) {
    const uint64_t n = layer.tokens[from];
    const uint32_t pages = pagesFor(layer, n);
    std::copy(row(layer, from), row(layer, from) + pages, row(layer, to));
    ++layersDone;
    status = syncMirror(layer, to, 0, pages);
    const uint64_t residualRows = n - compressedCount(layer, n);
    for (int v = 0; v < 2 && status.isOk() && residualRows; ++v) {
      // Staging is the same fp16 [R][D] for every head's encoding.
      const SideRef sr = side(layer, v == 1, 0);
      for (uint32_t h = 0; h < geometry_.config.kv_heads && status.isOk(); ++h)
        status = backend_->copyWithinArena(residualOf(sr, to, h),
                                           residualOf(sr, from, h),
                                           residualRows * headDim * 2);
    }
    if (!status.isOk())
      break;
  }
  if (!status.isOk()) {
    for (uint32_t l = 0; l < layersDone; ++l) {
      Layer &layer = layers_[l];
      const uint32_t pages = pagesFor(layer, layer.tokens[from]);
      std::fill(row(layer, to), row(layer, to) + pages, -1);
      (void)syncMirror(layer, to, 0, pages); // best effort
    }
    freeChildBits();
    return status;
  }

  // Commit: share every page (holes stay holes) and the eviction state.
  --freeSlotCount_;
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer &layer = layers_[l];
    const uint64_t n = layer.tokens[from];
    const uint32_t pages = pagesFor(layer, n);
    for (uint32_t i = 0; i < pages; ++i)
      if (row(layer, to)[i] != KVC_RT_PAGE_HOLE)
        layer.pool.retain(row(layer, to)[i]);
    layer.tokens[to] = static_cast<uint32_t>(n);
    layer.totalTokens += n;
    layer.totalCompressed += compressedCount(layer, n);
    layer.liveBits[to] = childBits[l];
    layer.evicted[to] = layer.evicted[from];
    layer.totalEvicted += layer.evicted[from];
    if (DemotedTokens *store = childDemoted[l]) {
      layer.demoted[to] = store;
      layer.totalDemoted += store->demotedTokens;
      layer.totalDemotedBytes +=
          uint64_t(store->pagesHeld()) * store->pageBytes();
    }
  }
  live_[to] = 1;
  ++liveCount_;
  *out = makeId(to, generation_[to]);
  return Status::ok();
}

Status Cache::freeSequence(kvc_rt_seq seq) {
  uint32_t slot;
  KVC_RT_RETURN_IF_ERROR(resolve(seq, &slot));
  // Clear the mirror first: the only step that can fail.
  for (Layer &layer : layers_) {
    const uint32_t pages = pagesFor(layer, layer.tokens[slot]);
    if (geometry_.deviceMirror && pages) {
      const size_t offset = size_t{slot} * geometry_.maxPagesPerSequence;
      KVC_RT_RETURN_IF_ERROR(backend_->copyToArena(
          reinterpret_cast<uint8_t *>(layer.deviceTable + offset),
          emptyRow_.data(), size_t{pages} * sizeof(int32_t)));
    }
  }
  for (Layer &layer : layers_) {
    const uint64_t n = layer.tokens[slot];
    const uint32_t pages = pagesFor(layer, n);
    int32_t *entries = row(layer, slot);
    for (uint32_t i = 0; i < pages; ++i) {
      if (entries[i] != KVC_RT_PAGE_HOLE)
        layer.pool.release(entries[i]);
      entries[i] = -1;
    }
    dropEvictionState(layer, slot);
    layer.totalTokens -= n;
    layer.totalCompressed -= compressedCount(layer, n);
    layer.tokens[slot] = 0;
  }
  live_[slot] = 0;
  --liveCount_;
  if (++generation_[slot] == 0)
    ++retiredCount_; // ids of this slot are exhausted: never reuse it
  else
    freeSlots_[freeSlotCount_++] = slot;
  return Status::ok();
}

} // namespace rt
} // namespace kvc
