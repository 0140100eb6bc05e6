//===- Eviction.h - Token budgets in the cost model -------------*- C++ -*-===//
//
// A layer may keep only b = fraction * context tokens (an H2O policy: the
// first kEvictSink tokens, a recent window of R tokens and the heaviest
// hitters by accumulated attention mass). Its cost is the side encodings'
// bits times b / context; its predicted error is measured on calibration
// data by running the policy over the calibration tokens, decode step by
// decode step, with the numerics library (kvc/Numerics/Evict.h: the one
// definition of the semantics), and comparing causal attention over the
// kept fp16 tokens with attention over all of them:
//   E_evict = sum_p ||o_evict(p) - o(p)||^2 / sum_p ||o(p)||^2
// over query positions p >= scoreFrom, like the quantization error E
// (AttentionError.h). The recorded kept sets then let computeErrors measure
// each K/V candidate on the kept tokens only.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_COSTMODEL_EVICTION_H
#define KVC_COSTMODEL_EVICTION_H

#include "kvc/CostModel/AttentionError.h"
#include "kvc/CostModel/Stats.h"
#include "kvc/Numerics/Evict.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kvc {
namespace cost {

/// Attention sinks every token budget keeps (StreamingLLM, H2O).
constexpr size_t kEvictSink = 4;
/// The token-budget fractions considered by default (1: no eviction).
inline std::vector<double> defaultEvictFractions() {
  return {1.0, 0.75, 0.5, 0.25};
}

/// One token budget of one layer.
struct TokenBudget {
  double fraction = 1.0;
  /// The policy at the planned context: budget = round(fraction * context).
  numerics::EvictPolicy policy;
  /// The policy run on the calibration tokens: the same sink and window,
  /// budget = round(fraction * min(context, T)), so that the last calibration
  /// query keeps the fraction the last query of the context keeps.
  numerics::EvictPolicy calibration;
  /// policy.budget / context: the share of the context's tokens stored.
  double keepFraction = 1.0;
};

/// The H2O token budget `fraction` of `context` for a layer with residual
/// window R (the policy's recent window is max(R, 1)) and T calibration
/// tokens (0: no calibration). Returns "" and fills `out`, or why the budget
/// is not possible (budget below sink + window, here or on the calibration
/// tokens). `fraction` must be in (0, 1) and context > 0.
std::string makeTokenBudget(double fraction, size_t context,
                            unsigned residual, size_t calibrationTokens,
                            TokenBudget &out);

/// "" if `fractions` is a valid evict-fractions list: non-empty, each in
/// (0, 1], no duplicates.
std::string checkEvictFractions(const std::vector<double> &fractions);

/// One eviction run to measure.
struct EvictionRequest {
  const LayerStats *layer = nullptr;
  numerics::EvictPolicy policy; ///< run on the calibration tokens
};

/// Its result: the error of eviction alone (fp16 kept tokens) per KV head
/// (numerator; denominator = the unevicted output norms), and which tokens
/// each query position saw, for computeErrors (LayerErrorRequest::liveUntil).
struct EvictionErrors {
  CandidateError error;
  std::vector<std::vector<uint32_t>> liveUntil; ///< [Hkv][T]
};

/// Runs every request, in parallel over (request, KV head), in fp64
/// (numerics::referenceAttention with its keep mask and attention mass) on
/// the fp16-rounded keys and values. Decode order per position p: token p
/// becomes live, the queries of p attend over the live tokens (scored when
/// p >= options.scoreFrom), H2O adds their attention mass to the scores,
/// then selectKeptTokens evicts down to the budget. Requires
/// options.scoreFrom < T and valid policies.
std::vector<EvictionErrors>
simulateEvictions(const std::vector<EvictionRequest> &requests,
                  const ErrorOptions &options);

} // namespace cost
} // namespace kvc

#endif // KVC_COSTMODEL_EVICTION_H
