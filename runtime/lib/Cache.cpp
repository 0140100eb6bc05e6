//===- Cache.cpp - Creation, sequences, fork and append -------------------===//

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

namespace {
/// fp16 bits of element `index` of an append input. Inputs are rounded to
/// fp16 on the way in, whether they are staged or compressed right away, so
/// a cache's contents never depend on how appends were split.
inline uint16_t inputHalf(const void *base, uint32_t dtype, uint64_t index) {
  if (dtype == KVC_RT_DTYPE_F32)
    return numerics::floatToHalf(static_cast<const float *>(base)[index]);
  return static_cast<const uint16_t *>(base)[index];
}
} // namespace

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

//===----------------------------------------------------------------------===//
// Append
//===----------------------------------------------------------------------===//

Status Cache::append(kvc_rt_seq seq, uint32_t layerIndex,
                     const kvc_rt_tokens &in) {
  // Phase 1: validate and reserve. Nothing changes until every check passed.
  uint32_t slot;
  KVC_RT_RETURN_IF_ERROR(resolve(seq, &slot));
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layerIndex));
  const kvc_rt_cache_config &cfg = geometry_.config;
  if (in.dtype != KVC_RT_DTYPE_F32 && in.dtype != KVC_RT_DTYPE_F16)
    return invalidArgument("unknown token dtype " + std::to_string(in.dtype));
  if (in.kv_heads != cfg.kv_heads || in.head_dim != cfg.head_dim)
    return Status::error(
        KVC_RT_ERROR_SHAPE_MISMATCH,
        "tokens have " + std::to_string(in.kv_heads) + " kv heads of dimension " +
            std::to_string(in.head_dim) + " but the cache has " +
            std::to_string(cfg.kv_heads) + " kv heads of dimension " +
            std::to_string(cfg.head_dim));
  if (in.num_tokens == 0)
    return Status::ok();
  if (!in.keys)
    return nullPointer("tokens.keys");
  if (!in.values)
    return nullPointer("tokens.values");

  Layer &layer = layers_[layerIndex];
  const uint64_t n0 = layer.tokens[slot];
  const uint64_t n1 = n0 + in.num_tokens;
  if (n1 > cfg.max_tokens)
    return Status::error(
        KVC_RT_ERROR_CAPACITY_EXCEEDED,
        "appending " + std::to_string(in.num_tokens) + " tokens to " +
            std::to_string(n0) + " tokens in layer " +
            std::to_string(layerIndex) + " exceeds max_tokens (" +
            std::to_string(cfg.max_tokens) + ")");
  const uint64_t c0 = compressedCount(layer, n0);
  const uint64_t c1 = compressedCount(layer, n1);
  const uint32_t p0 = pagesFor(layer, n0);
  const uint32_t p1 = pagesFor(layer, n1);
  const uint32_t T = cfg.page_tokens;
  int32_t *entries = row(layer, slot);
  // Copy-on-write: the flush writes into the last, partially filled page,
  // and another sequence (a fork) still reads it. A hole there (its tokens
  // were evicted while staged) is not written at all.
  const uint32_t cowIndex = static_cast<uint32_t>(c0 / T);
  const bool cow = c1 > c0 && c0 % T != 0 &&
                   entries[cowIndex] != KVC_RT_PAGE_HOLE &&
                   layer.pool.refCount(entries[cowIndex]) > 1;
  // New pages whose positions were all evicted while staged stay holes.
  uint64_t needed = cow ? 1 : 0;
  for (uint32_t p = p0; p < p1; ++p)
    needed += pageDead(layer, slot, p, n0) ? 0 : 1;
  if (needed > layer.pool.freeCount())
    return Status::error(
        KVC_RT_ERROR_OUT_OF_MEMORY,
        "layer " + std::to_string(layerIndex) + ": the append needs " +
            std::to_string(needed) + " new pages but only " +
            std::to_string(layer.pool.freeCount()) + " of " +
            std::to_string(layer.pool.capacity()) + " are free");
  const uint64_t headStride = in.head_stride
                                  ? in.head_stride
                                  : uint64_t(in.num_tokens) * cfg.head_dim;
  const uint64_t tokenStride = in.token_stride ? in.token_stride : cfg.head_dim;

  // Phase 2: take the pages, then write. Only the backend can fail here; if
  // it does, the bookkeeping is rolled back.
  const LayerGeometry &lg = *layer.geo;
  const int32_t sharedPage = cow ? entries[cowIndex] : -1;
  const int32_t cowPage = cow ? layer.pool.allocate() : -1;
  for (uint32_t p = p0; p < p1; ++p)
    entries[p] = pageDead(layer, slot, p, n0) ? KVC_RT_PAGE_HOLE
                                              : layer.pool.allocate();
  auto rollback = [&](Status failure) {
    for (uint32_t p = p0; p < p1; ++p) {
      if (entries[p] != KVC_RT_PAGE_HOLE)
        layer.pool.release(entries[p]);
      entries[p] = -1;
    }
    if (cow) {
      layer.pool.release(cowPage);
      entries[cowIndex] = sharedPage;
    }
    const uint32_t first = cow ? cowIndex : p0;
    (void)syncMirror(layer, slot, first, p1 - first); // best effort
    return failure;
  };

  Status status;
  // Fresh pages are zeroed so that padding and unwritten slots are
  // reproducible (dumps, byte comparisons).
  for (uint32_t p = p0; p < p1 && status.isOk(); ++p) {
    if (entries[p] == KVC_RT_PAGE_HOLE)
      continue;
    status = backend_->fillZero(layer.kPool + size_t(entries[p]) * lg.kPageBytes,
                                lg.kPageBytes);
    if (status.isOk())
      status = backend_->fillZero(
          layer.vPool + size_t(entries[p]) * lg.vPageBytes, lg.vPageBytes);
  }
  if (cow && status.isOk()) {
    status = backend_->copyWithinArena(
        layer.kPool + size_t(cowPage) * lg.kPageBytes,
        layer.kPool + size_t(sharedPage) * lg.kPageBytes, lg.kPageBytes);
    if (status.isOk())
      status = backend_->copyWithinArena(
          layer.vPool + size_t(cowPage) * lg.vPageBytes,
          layer.vPool + size_t(sharedPage) * lg.vPageBytes, lg.vPageBytes);
    entries[cowIndex] = cowPage;
  }
  if (status.isOk()) {
    const uint32_t first = cow ? cowIndex : p0;
    status = syncMirror(layer, slot, first, p1 - first);
  }
  // Compress first: it reads the old residual rows that the new residual
  // rows overwrite.
  for (int v = 0; v < 2 && status.isOk(); ++v)
    status = writeCompressed(layer, slot, v == 1, in, headStride, tokenStride,
                             n0, c0, c1);
  for (int v = 0; v < 2 && status.isOk(); ++v)
    status = writeResidual(layer, slot, v == 1, in, headStride, tokenStride,
                           n0, n1, c1);
  if (!status.isOk())
    return rollback(status);

  // Commit.
  if (cow)
    layer.pool.release(sharedPage); // still referenced by the other owner
  layer.tokens[slot] = static_cast<uint32_t>(n1);
  layer.totalTokens += n1 - n0;
  layer.totalCompressed += c1 - c0;
  return Status::ok();
}

Status Cache::writeCompressed(Layer &layer, uint32_t slot, bool value,
                              const kvc_rt_tokens &in, uint64_t headStride,
                              uint64_t tokenStride, uint64_t n0, uint64_t c0,
                              uint64_t c1) {
  if (c1 <= c0)
    return Status::ok();
  const void *input = value ? in.values : in.keys;
  const uint32_t D = geometry_.config.head_dim;
  const uint32_t T = geometry_.config.page_tokens;
  const bool direct = backend_->hostAccessible();
  const int32_t *entries = row(layer, slot);
  // A flush compresses every staged token: c1 >= c0 + R > n0.
  const uint64_t stagedRows = n0 - c0;
  for (uint32_t h = 0; h < geometry_.config.kv_heads; ++h) {
    const SideRef sr = side(layer, value, h);
    const uint16_t *staged = nullptr;
    if (stagedRows) {
      uint8_t *residual = residualOf(sr, slot, h);
      if (direct) {
        staged = reinterpret_cast<const uint16_t *>(residual);
      } else {
        KVC_RT_RETURN_IF_ERROR(backend_->copyToHost(
            scratchHalf_.data(), residual, stagedRows * D * 2));
        staged = scratchHalf_.data();
      }
    }
    // One page piece at a time: [t0, t0 + count) within page t0 / T. Pieces
    // start and end on multiples of R or T, hence of every channel group.
    for (uint64_t t0 = c0; t0 < c1;) {
      const uint64_t page = t0 / T;
      const uint64_t first = t0 % T;
      const uint64_t count = std::min<uint64_t>(c1, (page + 1) * T) - t0;
      if (entries[page] == KVC_RT_PAGE_HOLE) {
        t0 += count; // every token of a hole is evicted: nothing to keep
        continue;
      }
      float *x = scratchTokens_.data();
      for (uint64_t i = 0; i < count; ++i) {
        const uint64_t t = t0 + i;
        float *dst = x + i * D;
        if (t < n0) {
          const uint16_t *src = staged + (t - c0) * D;
          for (uint32_t c = 0; c < D; ++c)
            dst[c] = numerics::halfToFloat(src[c]);
        } else {
          const uint64_t base = h * headStride + (t - n0) * tokenStride;
          for (uint32_t c = 0; c < D; ++c)
            dst[c] = numerics::halfToFloat(inputHalf(input, in.dtype, base + c));
        }
      }
      uint8_t *block = sr.blockOf(entries[page]);
      if (direct) {
        numerics::writePageTokens(x, first, count, sr.encoding, D, T, block);
      } else {
        uint8_t *staging = scratchBlock_.data();
        numerics::writePageTokens(x, first, count, sr.encoding, D, T,
                                  staging);
        ByteRange codes, params;
        pageTokenRanges(sr.block, T, first, count, &codes, &params);
        KVC_RT_RETURN_IF_ERROR(backend_->copyToArena(
            block + codes.offset, staging + codes.offset, codes.bytes));
        KVC_RT_RETURN_IF_ERROR(backend_->copyToArena(
            block + params.offset, staging + params.offset, params.bytes));
      }
      t0 += count;
    }
  }
  return Status::ok();
}

Status Cache::writeResidual(Layer &layer, uint32_t slot, bool value,
                            const kvc_rt_tokens &in, uint64_t headStride,
                            uint64_t tokenStride, uint64_t n0, uint64_t n1,
                            uint64_t c1) {
  // Tokens [max(c1, n0), n1) stay fp16; token t is row t - c1.
  const uint64_t s0 = std::max(c1, n0);
  if (s0 >= n1)
    return Status::ok();
  const SideRef sr = side(layer, value, 0); // staging: same for every head
  const void *input = value ? in.values : in.keys;
  const uint32_t D = geometry_.config.head_dim;
  const bool direct = backend_->hostAccessible();
  const uint64_t rows = n1 - s0;
  const uint64_t firstRow = s0 - c1;
  for (uint32_t h = 0; h < geometry_.config.kv_heads; ++h) {
    uint8_t *residual = residualOf(sr, slot, h) + firstRow * D * 2;
    uint16_t *dst = direct ? reinterpret_cast<uint16_t *>(residual)
                           : scratchHalf_.data();
    for (uint64_t i = 0; i < rows; ++i) {
      const uint64_t base = h * headStride + (s0 + i - n0) * tokenStride;
      for (uint32_t c = 0; c < D; ++c)
        dst[i * D + c] = inputHalf(input, in.dtype, base + c);
    }
    if (!direct)
      KVC_RT_RETURN_IF_ERROR(
          backend_->copyToArena(residual, scratchHalf_.data(), rows * D * 2));
  }
  return Status::ok();
}

} // namespace rt
} // namespace kvc
