//===- Evict.h - token eviction semantics -----------------------*- C++ -*-===//
//
// The one definition of which tokens an eviction policy keeps, and of the
// attention mass that score-based policies rank tokens by. The runtime, the
// lowering's oracle tests, the cost model and the Python harness all call
// these functions.
//
// A policy keeps at most `budget` tokens of each (sequence, KV head): the
// first `sink` tokens, the `window` most recent ones and, for score-based
// policies (H2O: attention mass accumulated over decode steps; SnapKV:
// attention mass of an observation window of queries at prefill), the
// `budget - sink - window` middle tokens with the highest scores. Ties go to
// the later token, so the choice is deterministic. Tokens already evicted
// (keep[t] == 0 on entry) stay evicted and do not count against the budget's
// middle slots.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_NUMERICS_EVICT_H
#define KVC_NUMERICS_EVICT_H

#include "kvc/Numerics/Encoding.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kvc {
namespace numerics {

enum class EvictKind : uint8_t { Streaming = 0, H2O = 1, SnapKV = 2 };

struct EvictPolicy {
  EvictKind kind = EvictKind::Streaming;
  size_t sink = 0;
  size_t window = 0;
  size_t budget = 0;
  /// One budget per KV head, or empty: every head keeps `budget` tokens.
  std::vector<size_t> headBudgets;

  /// The policy of KV head `head`: `budget` replaced by the head's own, if
  /// any.
  EvictPolicy forHead(size_t head) const;
  bool operator==(const EvictPolicy &other) const {
    return kind == other.kind && sink == other.sink &&
           window == other.window && budget == other.budget &&
           headBudgets == other.headBudgets;
  }
};

/// Empty when `policy` is valid; otherwise why not (budget >= 1, sink +
/// window <= budget, streaming keeps exactly sink + window, window >= 1 so
/// that the newest token, the one a decode step's query sits at, is kept).
/// With head budgets, each must satisfy the same rules, `budget` must be
/// their maximum, and the policy must rank tokens (streaming keeps sink +
/// window in every head).
std::string checkEvictPolicy(const EvictPolicy &policy);

/// Empty when `policy` fits a layer of `numKVHeads` KV heads (its head
/// budgets, if any, number numKVHeads); otherwise why not.
std::string checkEvictPolicyHeads(const EvictPolicy &policy,
                                  size_t numKVHeads);

/// Parses "streaming:sink=4:window=60", "h2o:sink=4:window=64:budget=256" or
/// "snapkv:...", with per-head budgets as "h2o:sink=4:window=64:heads=256,128"
/// (`budget` may then be left out: it is their maximum). Streaming's budget
/// defaults to sink + window. Returns the error text (empty on success).
std::string parseEvictPolicy(const std::string &spec, EvictPolicy &policy);

/// Prints the spec form parseEvictPolicy reads.
std::string formatEvictPolicy(const EvictPolicy &policy);

/// Applies `policy` to one (sequence, KV head) holding `numTokens` tokens.
/// keep[t] is 1 for a live token and 0 for one evicted earlier; on return the
/// tokens the policy drops are 0 as well. With at most `budget` live tokens
/// nothing changes. Otherwise the live tokens among the first `sink` positions
/// and the last `window` positions stay, and of the other live tokens the
/// highest-scoring `budget - (sink and window live tokens)` stay (`scores` has
/// numTokens entries; ignored, and may be null, for streaming). Returns the
/// number of live tokens after eviction. `policy` is one head's: it must
/// have no head budgets (see EvictPolicy::forHead).
size_t selectKeptTokens(const EvictPolicy &policy, const float *scores,
                        size_t numTokens, uint8_t *keep);

/// Two-tier eviction keeps an evicted token at a cheaper encoding instead
/// of dropping it: its row as readers saw it is re-encoded alone. Empty when
/// `side` can hold one token on its own (fp16, fp8, token-axis
/// quantization); otherwise why not.
std::string checkDemoteEncoding(const SideEncoding &side);

/// The row readers see for a demoted token: `row` [headDim] (what they saw
/// before the eviction) through `side` alone. `side` must pass
/// checkDemoteEncoding.
void demoteRow(const SideEncoding &side, const float *row, unsigned headDim,
               float *out);

/// Adds the attention mass of one query position to `mass`: `probs` is
/// [numQueryHeads][numTokens] (softmax rows, zero for invisible keys) and
/// `mass` is [numKVHeads][numTokens]; query head h belongs to KV head
/// h / (numQueryHeads / numKVHeads), so each KV head sums its GQA group.
void accumulateAttentionMass(const float *probs, size_t numQueryHeads,
                             size_t numKVHeads, size_t numTokens, float *mass);

} // namespace numerics
} // namespace kvc

#endif // KVC_NUMERICS_EVICT_H
