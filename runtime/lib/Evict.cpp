//===- Evict.cpp - Token eviction: live bitmaps and page holes ------------===//
//
// Which tokens a policy keeps is kvc::numerics::selectKeptTokens (the one
// definition); this file only keeps the result: a bitmap per (sequence,
// layer, KV head) and page-table holes for pages left without a live token.
// Nothing is copied, so eviction costs no bandwidth and positions stay put.
//
//===----------------------------------------------------------------------===//

#include "Cache.h"

#include "kvc/Numerics/Evict.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace kvc {
namespace rt {

namespace {
/// The numerics policy of a C policy (and its per-head budgets, if any:
/// `heads` entries), or the reason it is not valid.
Status toNumerics(const kvc_rt_evict_policy &in, const uint32_t *headBudgets,
                  uint32_t heads, numerics::EvictPolicy *out) {
  if (in.kind > KVC_RT_EVICT_SNAPKV)
    return invalidArgument("unknown eviction policy kind " +
                           std::to_string(in.kind) +
                           " (0 streaming, 1 h2o, 2 snapkv)");
  numerics::EvictPolicy p;
  p.kind = static_cast<numerics::EvictKind>(in.kind);
  p.sink = in.sink;
  p.window = in.window;
  p.budget = in.budget;
  if (headBudgets)
    p.headBudgets.assign(headBudgets, headBudgets + heads);
  const std::string err = numerics::checkEvictPolicy(p);
  if (!err.empty())
    return invalidArgument(err);
  *out = p;
  return Status::ok();
}
} // namespace

Status Cache::evict(kvc_rt_seq seq, uint32_t layerIndex,
                    const kvc_rt_evict_policy &cPolicy,
                    const uint32_t *headBudgets, const float *scores,
                    uint64_t numTokens) {
  // Phase 1: validate and compute the new live sets in scratch.
  uint32_t slot;
  KVC_RT_RETURN_IF_ERROR(resolve(seq, &slot));
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layerIndex));
  numerics::EvictPolicy policy;
  KVC_RT_RETURN_IF_ERROR(toNumerics(cPolicy, headBudgets,
                                    geometry_.config.kv_heads, &policy));
  Layer &layer = layers_[layerIndex];
  const uint64_t n = layer.tokens[slot];
  if (numTokens != n)
    return invalidArgument("num_tokens is " + std::to_string(numTokens) +
                           " but the sequence has " + std::to_string(n) +
                           " tokens in layer " + std::to_string(layerIndex));
  const uint32_t H = geometry_.config.kv_heads;
  const bool scored = policy.kind != numerics::EvictKind::Streaming;
  if (scored && !scores && n > 0)
    return invalidArgument(numerics::formatEvictPolicy(policy) +
                           " ranks tokens by score: scores must not be NULL");
  if (scored)
    for (uint64_t i = 0; i < uint64_t(H) * n; ++i)
      if (std::isnan(scores[i]))
        return invalidArgument("score of head " + std::to_string(i / n) +
                               " token " + std::to_string(i % n) + " is NaN");

  if (n == 0)
    return Status::ok(); // nothing to rank (scores may be NULL then)

  HostArray<uint8_t> keep;
  if (!keep.allocate(size_t{H} * n, 1))
    return Status::error(KVC_RT_ERROR_OUT_OF_MEMORY,
                         "cannot allocate " + std::to_string(uint64_t(H) * n) +
                             " bytes of eviction scratch");
  uint64_t liveBefore = 0, liveAfter = 0;
  for (uint32_t h = 0; h < H; ++h) {
    uint8_t *k = keep.data() + size_t{h} * n;
    for (uint64_t t = 0; t < n; ++t) {
      k[t] = tokenLive(layer, slot, h, t) ? 1 : 0;
      liveBefore += k[t];
    }
    liveAfter += numerics::selectKeptTokens(
        policy.forHead(h), scored ? scores + size_t{h} * n : nullptr, n, k);
  }
  if (liveAfter == liveBefore)
    return Status::ok(); // nothing evicted: no bitmap, no change

  // Pages left without a live token become holes. The new live sets are
  // still in `keep`; the bitmaps change only once nothing can fail.
  const uint64_t T = geometry_.config.page_tokens;
  auto deadAfter = [&](uint64_t page) {
    if ((page + 1) * T > n)
      return false;
    for (uint32_t h = 0; h < H; ++h) {
      const uint8_t *k = keep.data() + size_t{h} * n;
      for (uint64_t t = page * T; t < (page + 1) * T; ++t)
        if (k[t])
          return false;
    }
    return true;
  };
  int32_t *entries = row(layer, slot);
  const uint32_t pages = pagesFor(layer, n);
  std::vector<std::pair<uint32_t, int32_t>> released;
  for (uint32_t i = 0; i < pages; ++i)
    if (entries[i] != KVC_RT_PAGE_HOLE && deadAfter(i))
      released.emplace_back(i, entries[i]);

  // The bitmaps, allocated on first use with every bit 1.
  const size_t bitmapBytes = size_t{H} * bitmapHeadBytes_;
  uint8_t *bits = layer.liveBits[slot];
  uint8_t *fresh = nullptr;
  if (!bits) {
    fresh = static_cast<uint8_t *>(std::malloc(bitmapBytes));
    if (!fresh)
      return Status::error(KVC_RT_ERROR_OUT_OF_MEMORY,
                           "cannot allocate the live bitmaps (" +
                               std::to_string(bitmapBytes) + " bytes)");
    std::memset(fresh, 0xFF, bitmapBytes);
    bits = fresh;
  }

  // Phase 2: the mirror (the only step that can fail), then commit.
  Status status;
  for (const auto &r : released) {
    entries[r.first] = KVC_RT_PAGE_HOLE;
    if (status.isOk())
      status = syncMirror(layer, slot, r.first, 1);
  }
  if (!status.isOk()) {
    for (const auto &r : released) {
      entries[r.first] = r.second;
      (void)syncMirror(layer, slot, r.first, 1); // best effort
    }
    std::free(fresh);
    return status;
  }
  for (const auto &r : released)
    layer.pool.release(r.second); // a fork's reference may keep it in use
  for (uint32_t h = 0; h < H; ++h) {
    const uint8_t *k = keep.data() + size_t{h} * n;
    uint8_t *head = bits + size_t{h} * bitmapHeadBytes_;
    for (uint64_t t = 0; t < n; ++t)
      if (!k[t])
        head[t / 8] &= uint8_t(~(1u << (t % 8)));
  }
  layer.liveBits[slot] = bits;
  const uint64_t newlyEvicted = liveBefore - liveAfter;
  layer.evicted[slot] += newlyEvicted;
  layer.totalEvicted += newlyEvicted;
  return Status::ok();
}

Status Cache::liveTokens(kvc_rt_seq seq, uint32_t layerIndex, uint32_t head,
                         uint8_t *out, uint64_t n) const {
  uint32_t slot;
  KVC_RT_RETURN_IF_ERROR(resolve(seq, &slot));
  KVC_RT_RETURN_IF_ERROR(checkLayerIndex(layerIndex));
  KVC_RT_RETURN_IF_ERROR(checkHeadIndex(head));
  const Layer &layer = layers_[layerIndex];
  const uint64_t length = layer.tokens[slot];
  if (n != length)
    return invalidArgument("n is " + std::to_string(n) +
                           " but the sequence has " + std::to_string(length) +
                           " tokens in layer " + std::to_string(layerIndex));
  if (!out && n > 0)
    return nullPointer("out");
  for (uint64_t t = 0; t < n; ++t)
    out[t] = tokenLive(layer, slot, head, t) ? 1 : 0;
  return Status::ok();
}

} // namespace rt
} // namespace kvc
