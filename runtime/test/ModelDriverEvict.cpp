//===- ModelDriverEvict.cpp - Eviction operations of the model driver ----===//
//
// kvc_rt_evict calls with random policies and scores, and the eviction
// calls that must fail. The model's live sets come from the numerics
// library's selectKeptTokens (the spec); its holes from the rule "every
// position of the page below n and evicted in every head".
//
//===----------------------------------------------------------------------===//

#include "ModelDriver.h"

#include "kvc/Numerics/Evict.h"
#include "kvc/Numerics/Layout.h"

#include <algorithm>
#include <limits>

namespace kvc {
namespace rt {
namespace testing {

namespace num = kvc::numerics;

bool ModelDriver::pageDead(const SeqLayer &sl, uint64_t page,
                           uint64_t n) const {
  const uint64_t T = cfg_.config.page_tokens;
  if ((page + 1) * T > n)
    return false;
  for (const std::vector<uint8_t> &live : sl.live)
    for (uint64_t t = page * T; t < (page + 1) * T; ++t)
      if (live[t])
        return false;
  return true;
}

std::string ModelDriver::opEvict(Choices &c) {
  if (seqs_.empty())
    return opCreate();
  const kvc_rt_cache_config &cfg = cfg_.config;
  Seq &seq = seqs_[c.below(static_cast<uint32_t>(seqs_.size()))];
  const uint32_t layer = c.below(cfg.num_layers);
  SeqLayer &sl = seq.layers[layer];
  const uint32_t H = cfg.kv_heads;
  const Fingerprint before = fingerprint();
  if (c.below(8) == 0)
    return opEvictFailure(c, before);

  // Budgets from a few tokens to more than the sequence (a no-op).
  kvc_rt_evict_policy policy{};
  policy.kind = c.below(3);
  policy.sink = c.below(3) ? c.below(5) : 0;
  policy.window = 1 + c.below(c.below(2) ? 8 : 48);
  policy.budget = policy.sink + policy.window;
  if (policy.kind != KVC_RT_EVICT_STREAMING)
    policy.budget += c.below(c.below(2) ? 16 : 96);
  // A third of the score-based evictions give every KV head its own
  // budget; the policy's budget is then the largest.
  std::vector<uint32_t> headBudgets;
  if (policy.kind != KVC_RT_EVICT_STREAMING && c.below(3) == 0) {
    uint32_t largest = 0;
    for (uint32_t h = 0; h < H; ++h) {
      headBudgets.push_back(policy.sink + policy.window +
                            c.below(c.below(2) ? 16 : 96));
      largest = std::max(largest, headBudgets.back());
    }
    policy.budget = largest;
  }
  // Scores: gaussian, or small integers (ties go to the later token).
  const bool ties = c.below(3) == 0;
  std::vector<float> scores(size_t{H} * sl.n);
  for (float &x : scores)
    x = ties ? float(c.below(4)) : c.gaussian();
  const bool scored = policy.kind != KVC_RT_EVICT_STREAMING;
  // Two-tier eviction (CPU backend): a (sequence, layer) that demotes keeps
  // demoting with its encoding; one that never evicted may start, with a
  // random per-token encoding.
  const bool canDemote = cfg.backend == KVC_RT_BACKEND_CPU;
  bool demote = sl.demoting;
  kvc_rt_encoding demoteEncoding = sl.demote;
  const bool neverEvicted =
      std::all_of(sl.live.begin(), sl.live.end(), [](const auto &live) {
        return std::all_of(live.begin(), live.end(),
                           [](uint8_t x) { return x != 0; });
      });
  if (!demote && canDemote && neverEvicted && c.below(3) == 0) {
    demote = true;
    auto randomSide = [&]() -> kvc_rt_side_encoding {
      switch (c.below(3)) {
      case 0:
        return fp8Side(c.below(2) ? KVC_RT_FP8_E4M3 : KVC_RT_FP8_E5M2);
      case 1:
        return fp16Side();
      default: {
        const uint32_t bits[] = {2, 3, 4, 8};
        return quantSide(bits[c.below(4)], KVC_RT_AXIS_TOKEN, 32);
      }
      }
    };
    demoteEncoding = makeEncoding(randomSide(), randomSide(), 0);
  }
  // The rows readers see now, for the tokens this eviction may demote.
  const uint64_t cNow = compressed(layer, sl.n);
  auto currentRow = [&](uint32_t h, bool value, uint64_t t) {
    const std::vector<float> &x = value ? sl.values[h] : sl.keys[h];
    const std::vector<float> &deq = value ? sl.deqValues[h] : sl.deqKeys[h];
    const float *row = t < cNow ? deq.data() + t * cfg.head_dim
                                : x.data() + t * cfg.head_dim;
    return std::vector<float>(row, row + cfg.head_dim);
  };
  const kvc_rt_status s =
      demote ? kvc_rt_evict_demote(
                   cache_, seq.id, layer, &policy,
                   headBudgets.empty() ? nullptr : headBudgets.data(),
                   &demoteEncoding,
                   scored || c.below(2) ? scores.data() : nullptr, sl.n)
             : kvc_rt_evict_heads(
                   cache_, seq.id, layer, &policy,
                   headBudgets.empty() ? nullptr : headBudgets.data(),
                   scored || c.below(2) ? scores.data() : nullptr, sl.n);
  if (s != KVC_RT_OK)
    return "evict: " + std::string(kvc_rt_status_name(s)) + ": " + kvc_rt_last_error();
  ++counts_.evict;

  // The model: the spec's selection per head, then the pages without a
  // live token become holes.
  num::EvictPolicy p;
  p.kind = static_cast<num::EvictKind>(policy.kind);
  p.sink = policy.sink;
  p.window = policy.window;
  p.budget = policy.budget;
  p.headBudgets.assign(headBudgets.begin(), headBudgets.end());
  for (uint32_t h = 0; h < H && sl.n > 0; ++h) {
    const std::vector<uint8_t> before = sl.live[h];
    const size_t liveBefore = std::count(before.begin(), before.end(), 1);
    const size_t liveAfter = num::selectKeptTokens(
        p.forHead(h), scored ? scores.data() + size_t{h} * sl.n : nullptr, sl.n,
        sl.live[h].data());
    counts_.evictedTokens += liveBefore - liveAfter;
    if (!demote || liveAfter == liveBefore)
      continue;
    // A demoted row: the demotion encoding's round trip of the row readers
    // saw (one token alone, at any slot).
    if (!sl.demoting) {
      sl.demoting = true;
      sl.demote = demoteEncoding;
      sl.demotedKeys.assign(H, {});
      sl.demotedValues.assign(H, {});
    }
    for (uint64_t t = 0; t < sl.n; ++t) {
      if (!before[t] || sl.live[h][t])
        continue;
      for (bool value : {false, true}) {
        const num::SideEncoding side =
            toNumerics(value ? demoteEncoding.value : demoteEncoding.key);
        const num::BlockLayout bl =
            num::computeBlockLayout(side, cfg.head_dim, cfg.page_tokens);
        std::vector<uint8_t> block(bl.blockBytes, 0);
        std::vector<float> row(cfg.head_dim);
        num::writePageTokens(currentRow(h, value, t).data(), 0, 1, side,
                             cfg.head_dim, cfg.page_tokens, block.data());
        num::readPageTokens(block.data(), 0, 1, side, cfg.head_dim,
                            cfg.page_tokens, row.data());
        (value ? sl.demotedValues : sl.demotedKeys)[h][t] = std::move(row);
      }
      ++counts_.demotedTokens;
    }
  }
  for (size_t i = 0; i < sl.pages.size(); ++i)
    if (sl.pages[i] >= 0 && pageDead(sl, i, sl.n)) {
      dropPage(layer, sl.pages[i]);
      sl.pages[i] = -1;
      ++counts_.holes;
    }
  if (c.below(4) == 0)
    return checkSequence(seq, layer, false, c.below(4) == 0);
  return "";
}

std::string ModelDriver::opEvictFailure(Choices &c,
                                        const Fingerprint &before) {
  const kvc_rt_cache_config &cfg = cfg_.config;
  const Seq &seq = seqs_[c.below(static_cast<uint32_t>(seqs_.size()))];
  const uint32_t layer = c.below(cfg.num_layers);
  const uint64_t n = seq.layers[layer].n;
  kvc_rt_evict_policy policy{KVC_RT_EVICT_H2O, 1, 2, 4};
  std::vector<float> scores(size_t{cfg.kv_heads} * (n + 2), 1.0f);
  switch (c.below(10)) {
  case 8: {
    // Per-head budgets whose largest is not the policy's budget.
    std::vector<uint32_t> budgets(cfg.kv_heads, 8);
    budgets[c.below(cfg.kv_heads)] = 9 + c.below(8);
    policy.budget = 8;
    return expectFailure(kvc_rt_evict_heads(cache_, seq.id, layer, &policy,
                                            budgets.data(), scores.data(), n),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before,
                         "evict with a head budget above the policy's");
  }
  case 0:
    policy.budget = c.below(3); // below sink + window
    return expectFailure(kvc_rt_evict(cache_, seq.id, layer, &policy,
                                      scores.data(), n),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before,
                         "evict with a budget below sink + window");
  case 1:
    policy.kind = KVC_RT_EVICT_STREAMING; // budget must be sink + window
    return expectFailure(kvc_rt_evict(cache_, seq.id, layer, &policy,
                                      nullptr, n),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before,
                         "streaming with budget != sink + window");
  case 2:
    policy.kind = 3 + c.below(100);
    return expectFailure(kvc_rt_evict(cache_, seq.id, layer, &policy,
                                      scores.data(), n),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before,
                         "evict with an unknown kind");
  case 3:
    policy.window = 0;
    return expectFailure(kvc_rt_evict(cache_, seq.id, layer, &policy,
                                      scores.data(), n),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before,
                         "evict with window 0");
  case 4:
    return expectFailure(kvc_rt_evict(cache_, seq.id, layer, &policy,
                                      scores.data(), n + 1 + c.below(2)),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before,
                         "evict with num_tokens != length");
  case 5:
    if (n == 0)
      return ""; // nothing to rank: NULL scores are fine then
    policy.kind = c.below(2) ? KVC_RT_EVICT_H2O : KVC_RT_EVICT_SNAPKV;
    return expectFailure(kvc_rt_evict(cache_, seq.id, layer, &policy,
                                      nullptr, n),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before,
                         "score-based evict without scores");
  case 6:
    if (n == 0)
      return "";
    scores[c.below(static_cast<uint32_t>(cfg.kv_heads * n))] =
        std::numeric_limits<float>::quiet_NaN();
    return expectFailure(kvc_rt_evict(cache_, seq.id, layer, &policy,
                                      scores.data(), n),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before,
                         "evict with a NaN score");
  case 7:
    if (c.below(2))
      return expectFailure(kvc_rt_evict(cache_, seq.id, layer, nullptr,
                                        scores.data(), n),
                           KVC_RT_ERROR_NULL_POINTER, before,
                           "evict with a NULL policy");
    return expectFailure(kvc_rt_evict(cache_, seq.id,
                                      cfg.num_layers + c.below(3), &policy,
                                      scores.data(), n),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before,
                         "evict of a layer out of range");
  default: {
    std::vector<uint8_t> out(n + 2);
    if (c.below(2))
      return expectFailure(kvc_rt_live_tokens(cache_, seq.id, layer,
                                              cfg.kv_heads + c.below(3),
                                              out.data(), n),
                           KVC_RT_ERROR_INVALID_ARGUMENT, before,
                           "live_tokens of a bad head");
    return expectFailure(kvc_rt_live_tokens(cache_, seq.id, layer, 0,
                                            out.data(), n + 1),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before,
                         "live_tokens with n != length");
  }
  }
}

} // namespace testing
} // namespace rt
} // namespace kvc
