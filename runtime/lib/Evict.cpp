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
#include "kvc/Numerics/Half.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <cstdlib>
#include <cstring>
#include <memory>
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
                    const uint32_t *headBudgets,
                    const kvc_rt_encoding *demote, const float *scores,
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
  const std::string where = " in layer " + std::to_string(layerIndex);
  DemotedTokens *store = layer.demoted[slot];
  kvc_rt_encoding demoteEncoding{};
  numerics::CacheEncoding demoteNumerics;
  if (demote) {
    if (geometry_.config.backend != KVC_RT_BACKEND_CPU)
      return Status::error(
          KVC_RT_ERROR_UNSUPPORTED,
          "demoting eviction keeps evicted tokens in host pages, which only "
          "the CPU backend's readers see; drop them with kvc_rt_evict here");
    demoteEncoding = *demote;
    demoteEncoding.residual = 0;
    KVC_RT_RETURN_IF_ERROR(convertEncoding(demoteEncoding, &demoteNumerics));
    const unsigned D = geometry_.config.head_dim,
                   T = geometry_.config.page_tokens;
    KVC_RT_RETURN_IF_ERROR(checkDemoteSide(demoteNumerics.key, "key", D, T));
    KVC_RT_RETURN_IF_ERROR(
        checkDemoteSide(demoteNumerics.value, "value", D, T));
    if (store && !store->sameEncoding(demoteEncoding))
      return invalidArgument("the sequence already demotes evicted tokens" +
                             where + " to another encoding");
    if (!store && layer.evicted[slot] > 0)
      return invalidArgument(
          "the sequence already dropped evicted tokens" + where +
          " (kvc_rt_evict): it cannot start keeping them");
  } else if (store) {
    return invalidArgument("the sequence keeps its evicted tokens at a lower "
                           "precision" +
                           where + ": evict it with kvc_rt_evict_demote");
  }
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

  // Two-tier: the pages of the newly evicted tokens' demoted rows. They are
  // written below, before any page is released, from the rows as readers
  // see them now; nothing after the allocation can fail on the CPU backend.
  std::unique_ptr<DemotedTokens> freshStore;
  std::vector<uint32_t> newDemotedPages;
  DemotedTokens *target = store;
  if (demote) {
    if (!target) {
      freshStore.reset(DemotedTokens::create(
          demoteEncoding, demoteNumerics, H, geometry_.config.head_dim,
          geometry_.config.page_tokens, geometry_.maxPagesPerSequence));
      if (!freshStore)
        return Status::error(KVC_RT_ERROR_OUT_OF_MEMORY,
                             "cannot allocate the demoted-token table");
      target = freshStore.get();
    }
    const uint64_t T = geometry_.config.page_tokens;
    for (uint32_t h = 0; h < H; ++h) {
      const uint8_t *k = keep.data() + size_t{h} * n;
      for (uint64_t t = 0; t < n; ++t) {
        if (k[t] || !tokenLive(layer, slot, h, t))
          continue;
        bool created;
        if (!target->ensurePage(uint32_t(t / T), &created)) {
          for (uint32_t p : newDemotedPages)
            target->dropPage(p);
          return Status::error(
              KVC_RT_ERROR_OUT_OF_MEMORY,
              "cannot allocate a page of demoted tokens (" +
                  std::to_string(target->pageBytes()) + " bytes)");
        }
        if (created)
          newDemotedPages.push_back(uint32_t(t / T));
      }
    }
    std::unique_ptr<float[]> rowBuffer(
        new (std::nothrow) float[geometry_.config.head_dim]);
    if (!rowBuffer) {
      for (uint32_t p : newDemotedPages)
        target->dropPage(p);
      return Status::error(KVC_RT_ERROR_OUT_OF_MEMORY,
                           "cannot allocate a row of scratch");
    }
    for (uint32_t h = 0; h < H; ++h) {
      const uint8_t *k = keep.data() + size_t{h} * n;
      for (uint64_t t = 0; t < n; ++t) {
        if (k[t] || !tokenLive(layer, slot, h, t))
          continue;
        for (bool value : {false, true}) {
          decodeToken(layer, slot, h, value, t, n, rowBuffer.get());
          target->write(h, value, t, rowBuffer.get());
        }
      }
    }
  }

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
    if (target)
      for (uint32_t p : newDemotedPages)
        target->dropPage(p);
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
  if (target) {
    if (freshStore)
      layer.demoted[slot] = freshStore.release();
    target->demotedTokens += newlyEvicted;
    layer.totalDemoted += newlyEvicted;
    layer.totalDemotedBytes +=
        uint64_t(newDemotedPages.size()) * target->pageBytes();
  }
  return Status::ok();
}

void Cache::decodeToken(const Layer &layer, uint32_t slot, uint32_t head,
                        bool value, uint64_t t, uint64_t n,
                        float *out) const {
  const uint32_t D = geometry_.config.head_dim;
  const uint32_t T = geometry_.config.page_tokens;
  const SideRef sr = side(layer, value, head);
  if (t >= compressedCount(layer, n)) {
    const uint64_t c = compressedCount(layer, n);
    const uint16_t *halves = reinterpret_cast<const uint16_t *>(
        residualOf(sr, slot, head) + (t - c) * D * 2);
    for (uint32_t i = 0; i < D; ++i)
      out[i] = numerics::halfToFloat(halves[i]);
    return;
  }
  // The token's whole group (channel-axis groups run along tokens).
  const unsigned granularity = sr.encoding.tokenGranularity();
  const uint64_t first = (t % T) / granularity * granularity;
  float *group = scratchTokens_.data();
  numerics::readPageTokens(sr.blockOf(row(layer, slot)[t / T]), first,
                           granularity, sr.encoding, D, T, group);
  std::memcpy(out, group + (t % T - first) * D, D * sizeof(float));
}

bool Cache::verifyDemoted(const Layer &layer, uint32_t slot, uint64_t n,
                          std::string *error) const {
  const DemotedTokens *store = layer.demoted[slot];
  if (!store)
    return true;
  if (store->demotedTokens != layer.evicted[slot]) {
    *error = "demoted " + std::to_string(store->demotedTokens) +
             " tokens but evicted " + std::to_string(layer.evicted[slot]);
    return false;
  }
  // A page of demoted tokens exists exactly where a token is evicted.
  const uint64_t T = geometry_.config.page_tokens;
  for (uint32_t p = 0; p < store->maxPages(); ++p) {
    bool anyEvicted = false;
    for (uint32_t h = 0; h < geometry_.config.kv_heads && !anyEvicted; ++h)
      for (uint64_t t = p * T; t < std::min<uint64_t>((p + 1) * T, n); ++t)
        if (!tokenLive(layer, slot, h, t)) {
          anyEvicted = true;
          break;
        }
    if (anyEvicted != (store->page(p) != nullptr)) {
      *error = "demoted page " + std::to_string(p) +
               (anyEvicted ? " is missing" : " holds no evicted token");
      return false;
    }
  }
  return true;
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
