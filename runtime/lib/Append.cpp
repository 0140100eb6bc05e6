//===- Append.cpp - Appends, and reservations for generated code ---------===//
//
// An append is planned (every check, and the pages it needs), its pages
// taken (new pages zeroed, a copy-on-write copy of a shared partial page,
// the page-table mirror), its tokens written, then committed. Generated
// append kernels write the tokens themselves: kvc_rt_reserve_append plans,
// takes and commits a batch and leaves the writing to them.
//
//===----------------------------------------------------------------------===//

#include "Cache.h"

#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Layout.h"

#include <algorithm>

namespace kvc {
namespace rt {

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

Status Cache::planAppend(kvc_rt_seq seq, uint32_t layerIndex,
                         uint64_t numTokens, AppendPlan *plan) {
  KVC_RT_RETURN_IF_ERROR(resolve(seq, &plan->slot));
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layerIndex));
  const kvc_rt_cache_config &cfg = geometry_.config;
  Layer &layer = layers_[layerIndex];
  plan->layer = layerIndex;
  plan->n0 = layer.tokens[plan->slot];
  plan->n1 = plan->n0 + numTokens;
  if (plan->n1 > cfg.max_tokens)
    return Status::error(KVC_RT_ERROR_CAPACITY_EXCEEDED,
                         "appending " + std::to_string(numTokens) +
                             " tokens to " + std::to_string(plan->n0) +
                             " tokens in layer " + std::to_string(layerIndex) +
                             " exceeds max_tokens (" +
                             std::to_string(cfg.max_tokens) + ")");
  plan->c0 = compressedCount(layer, plan->n0);
  plan->c1 = compressedCount(layer, plan->n1);
  plan->p0 = pagesFor(layer, plan->n0);
  plan->p1 = pagesFor(layer, plan->n1);
  const uint32_t T = cfg.page_tokens;
  const int32_t *entries = row(layer, plan->slot);
  // Copy-on-write: the flush writes into the last, partially filled page,
  // and another sequence (a fork) still reads it. A hole there (its tokens
  // were evicted while staged) is not written at all.
  plan->cowIndex = static_cast<uint32_t>(plan->c0 / T);
  plan->cow = plan->c1 > plan->c0 && plan->c0 % T != 0 &&
              entries[plan->cowIndex] != KVC_RT_PAGE_HOLE &&
              layer.pool.refCount(entries[plan->cowIndex]) > 1;
  // New pages whose positions were all evicted while staged stay holes.
  plan->neededPages = plan->cow ? 1 : 0;
  for (uint32_t p = plan->p0; p < plan->p1; ++p)
    plan->neededPages += pageDead(layer, plan->slot, p, plan->n0) ? 0 : 1;
  return Status::ok();
}

Status Cache::checkFreePages(uint32_t layerIndex, uint64_t needed) const {
  const Layer &layer = layers_[layerIndex];
  if (needed <= layer.pool.freeCount())
    return Status::ok();
  return Status::error(KVC_RT_ERROR_OUT_OF_MEMORY,
                       "layer " + std::to_string(layerIndex) +
                           ": the append needs " + std::to_string(needed) +
                           " new pages but only " +
                           std::to_string(layer.pool.freeCount()) + " of " +
                           std::to_string(layer.pool.capacity()) + " are free");
}

Status Cache::takeAppendPages(AppendPlan &plan) {
  Layer &layer = layers_[plan.layer];
  const LayerGeometry &lg = *layer.geo;
  int32_t *entries = row(layer, plan.slot);
  plan.sharedPage = plan.cow ? entries[plan.cowIndex] : -1;
  plan.cowPage = plan.cow ? layer.pool.allocate() : -1;
  for (uint32_t p = plan.p0; p < plan.p1; ++p)
    entries[p] = pageDead(layer, plan.slot, p, plan.n0) ? KVC_RT_PAGE_HOLE
                                                        : layer.pool.allocate();

  Status status;
  // Fresh pages are zeroed so that padding and unwritten slots are
  // reproducible (dumps, byte comparisons).
  for (uint32_t p = plan.p0; p < plan.p1 && status.isOk(); ++p) {
    if (entries[p] == KVC_RT_PAGE_HOLE)
      continue;
    status = backend_->fillZero(
        layer.kPool + size_t(entries[p]) * lg.kPageBytes, lg.kPageBytes);
    if (status.isOk())
      status = backend_->fillZero(
          layer.vPool + size_t(entries[p]) * lg.vPageBytes, lg.vPageBytes);
  }
  if (plan.cow && status.isOk()) {
    status = backend_->copyWithinArena(
        layer.kPool + size_t(plan.cowPage) * lg.kPageBytes,
        layer.kPool + size_t(plan.sharedPage) * lg.kPageBytes, lg.kPageBytes);
    if (status.isOk())
      status = backend_->copyWithinArena(
          layer.vPool + size_t(plan.cowPage) * lg.vPageBytes,
          layer.vPool + size_t(plan.sharedPage) * lg.vPageBytes, lg.vPageBytes);
    entries[plan.cowIndex] = plan.cowPage;
  }
  if (status.isOk()) {
    const uint32_t first = plan.cow ? plan.cowIndex : plan.p0;
    status = syncMirror(layer, plan.slot, first, plan.p1 - first);
  }
  if (!status.isOk())
    releaseAppendPages(plan);
  return status;
}

void Cache::releaseAppendPages(const AppendPlan &plan) {
  Layer &layer = layers_[plan.layer];
  int32_t *entries = row(layer, plan.slot);
  for (uint32_t p = plan.p0; p < plan.p1; ++p) {
    if (entries[p] >= 0) // not a hole (KVC_RT_PAGE_HOLE, -1)
      layer.pool.release(entries[p]);
    entries[p] = KVC_RT_PAGE_HOLE;
  }
  if (plan.cow && plan.cowPage >= 0) {
    layer.pool.release(plan.cowPage);
    entries[plan.cowIndex] = plan.sharedPage;
  }
  const uint32_t first = plan.cow ? plan.cowIndex : plan.p0;
  (void)syncMirror(layer, plan.slot, first, plan.p1 - first); // best effort
}

void Cache::commitAppend(const AppendPlan &plan) {
  Layer &layer = layers_[plan.layer];
  if (plan.cow)
    layer.pool.release(plan.sharedPage); // still referenced by the other owner
  layer.tokens[plan.slot] = static_cast<uint32_t>(plan.n1);
  layer.totalTokens += plan.n1 - plan.n0;
  layer.totalCompressed += plan.c1 - plan.c0;
}

Status Cache::append(kvc_rt_seq seq, uint32_t layerIndex,
                     const kvc_rt_tokens &in) {
  // Phase 1: validate and plan. Nothing changes until every check passed.
  uint32_t slot;
  KVC_RT_RETURN_IF_ERROR(resolve(seq, &slot));
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layerIndex));
  const kvc_rt_cache_config &cfg = geometry_.config;
  if (in.dtype != KVC_RT_DTYPE_F32 && in.dtype != KVC_RT_DTYPE_F16)
    return invalidArgument("unknown token dtype " + std::to_string(in.dtype));
  if (in.kv_heads != cfg.kv_heads || in.head_dim != cfg.head_dim)
    return Status::error(
        KVC_RT_ERROR_SHAPE_MISMATCH,
        "tokens have " + std::to_string(in.kv_heads) +
            " kv heads of dimension " + std::to_string(in.head_dim) +
            " but the cache has " + std::to_string(cfg.kv_heads) +
            " kv heads of dimension " + std::to_string(cfg.head_dim));
  if (in.num_tokens == 0)
    return Status::ok();
  if (!in.keys)
    return nullPointer("tokens.keys");
  if (!in.values)
    return nullPointer("tokens.values");
  AppendPlan plan;
  KVC_RT_RETURN_IF_ERROR(planAppend(seq, layerIndex, in.num_tokens, &plan));
  KVC_RT_RETURN_IF_ERROR(checkFreePages(layerIndex, plan.neededPages));
  const uint64_t headStride =
      in.head_stride ? in.head_stride : uint64_t(in.num_tokens) * cfg.head_dim;
  const uint64_t tokenStride = in.token_stride ? in.token_stride : cfg.head_dim;

  // Phase 2: take the pages, then write. Only the backend can fail here; if
  // it does, the bookkeeping is rolled back.
  KVC_RT_RETURN_IF_ERROR(takeAppendPages(plan));
  Layer &layer = layers_[layerIndex];
  Status status;
  // Compress first: it reads the old residual rows that the new residual
  // rows overwrite.
  for (int v = 0; v < 2 && status.isOk(); ++v)
    status = writeCompressed(layer, slot, v == 1, in, headStride, tokenStride,
                             plan.n0, plan.c0, plan.c1);
  for (int v = 0; v < 2 && status.isOk(); ++v)
    status = writeResidual(layer, slot, v == 1, in, headStride, tokenStride,
                           plan.n0, plan.n1, plan.c1);
  if (!status.isOk()) {
    releaseAppendPages(plan);
    return status;
  }
  commitAppend(plan);
  return Status::ok();
}

Status Cache::reserveAppend(const kvc_rt_seq *seqs, uint32_t count,
                            uint32_t layerIndex, uint32_t numTokens,
                            kvc_rt_append_range *out) {
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layerIndex));
  // A batch of more sequences than slots repeats one or holds a dead one.
  if (count > geometry_.config.max_sequences)
    return invalidArgument("a batch of " + std::to_string(count) +
                           " sequences exceeds max_sequences (" +
                           std::to_string(geometry_.config.max_sequences) +
                           ")");
  HostArray<AppendPlan> plans;
  if (!plans.allocate(count, AppendPlan()))
    return Status::error(KVC_RT_ERROR_OUT_OF_MEMORY,
                         "cannot allocate the plans of a batch of " +
                             std::to_string(count));
  // Every sequence is checked, and the pages of all of them counted, before
  // any is taken: the batch is reserved whole or not at all.
  const Layer &layer = layers_[layerIndex];
  uint64_t needed = 0;
  for (uint32_t i = 0; i < count; ++i) {
    AppendPlan &plan = plans[i];
    KVC_RT_RETURN_IF_ERROR(planAppend(seqs[i], layerIndex, numTokens, &plan));
    uint32_t earlierCopies = 0;
    const int32_t shared =
        plan.cow ? row(layer, plan.slot)[plan.cowIndex] : KVC_RT_PAGE_HOLE;
    for (uint32_t j = 0; j < i; ++j) {
      if (plans[j].slot == plan.slot)
        return invalidArgument("sequence " + std::to_string(seqs[i]) +
                               " appears twice in the batch (entries " +
                               std::to_string(j) + " and " + std::to_string(i) +
                               ")");
      if (plan.cow && plans[j].cow &&
          row(layer, plans[j].slot)[plans[j].cowIndex] == shared)
        ++earlierCopies;
    }
    // As appends one after the other would: once every other owner of the
    // shared page has taken its copy, the last one writes in place.
    if (plan.cow && layer.pool.refCount(shared) - earlierCopies <= 1) {
      plan.cow = false;
      --plan.neededPages;
    }
    needed += plan.neededPages;
  }
  KVC_RT_RETURN_IF_ERROR(checkFreePages(layerIndex, needed));
  if (numTokens == 0) {
    for (uint32_t i = 0; i < count; ++i)
      out[i] = {plans[i].n0, plans[i].n1, plans[i].c0, plans[i].c1};
    return Status::ok();
  }
  for (uint32_t i = 0; i < count; ++i) {
    Status status = takeAppendPages(plans[i]);
    if (!status.isOk()) {
      // A backend failure: give back what the earlier entries took.
      for (uint32_t j = i; j-- > 0;)
        releaseAppendPages(plans[j]);
      return status;
    }
  }
  for (uint32_t i = 0; i < count; ++i) {
    commitAppend(plans[i]);
    out[i] = {plans[i].n0, plans[i].n1, plans[i].c0, plans[i].c1};
  }
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
            dst[c] =
                numerics::halfToFloat(inputHalf(input, in.dtype, base + c));
        }
      }
      uint8_t *block = sr.blockOf(entries[page]);
      if (direct) {
        numerics::writePageTokens(x, first, count, sr.encoding, D, T, block);
      } else {
        uint8_t *staging = scratchBlock_.data();
        numerics::writePageTokens(x, first, count, sr.encoding, D, T, staging);
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
    uint16_t *dst =
        direct ? reinterpret_cast<uint16_t *>(residual) : scratchHalf_.data();
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
