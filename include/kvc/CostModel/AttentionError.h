//===- AttentionError.h - Measured attention error of candidates -*- C++ -*-===//
//
// The predicted error of a candidate is measured, not guessed: the candidate
// is applied with the numerics library to the calibration keys (or values)
// of one layer, the other side stays fp16, and teacher-forced causal
// attention (numerics::teacherForcedAttention's semantics, residual rule
// included) is compared with the all-fp16 cache over query positions
// >= scoreFrom:
//   E = sum_p ||o_c(p) - o(p)||^2 / sum_p ||o(p)||^2
// per KV head (its query group) and per layer (all heads). The computation
// runs in fp32 with the reference softmax and outputs computed once and the
// candidates evaluated as differences, in parallel over (layer, KV head).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_COSTMODEL_ATTENTIONERROR_H
#define KVC_COSTMODEL_ATTENTIONERROR_H

#include "kvc/CostModel/Candidates.h"
#include "kvc/CostModel/Stats.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvc {
namespace cost {

struct ErrorOptions {
  unsigned residual = 128;            ///< fp16 residual window R
  size_t scoreFrom = kDefaultScoreFrom; ///< first scored query position
  double scale = 0.0;                 ///< softmax scale; 0 = 1/sqrt(D)
  unsigned threads = 0;               ///< 0 = hardware concurrency
};

/// One candidate on one layer: per KV head, the squared output error summed
/// over the head's query group and the scored positions (numerator) and the
/// squared fp16 output norm (denominator).
struct CandidateError {
  std::vector<double> numerator;
  std::vector<double> denominator;
  /// E of KV head h alone.
  double headError(size_t h) const;
  /// E of the whole layer (every head compressed with the candidate).
  double layerError() const;
};

/// What to evaluate on one layer.
struct LayerErrorRequest {
  const LayerStats *layer = nullptr;
  unsigned residual = 128; ///< the layer's fp16 residual window R
  std::vector<Candidate> keyCandidates;
  std::vector<Candidate> valueCandidates;
  /// Token eviction (kvc/CostModel/Eviction.h), or null: per KV head and
  /// token j, the last query position that still sees j (kNeverEvicted: all
  /// of them). Evicted keys are invisible to the reference and to every
  /// candidate, so the candidates' errors are those of quantizing the kept
  /// tokens, relative to the evicted fp16 cache (and the denominators are
  /// the evicted cache's output norms).
  const std::vector<std::vector<uint32_t>> *liveUntil = nullptr;
};
/// liveUntil of a token that is never evicted.
constexpr uint32_t kNeverEvicted = UINT32_MAX;
struct LayerErrors {
  std::vector<CandidateError> key;   ///< parallel to keyCandidates
  std::vector<CandidateError> value; ///< parallel to valueCandidates
};

/// Evaluates every request, in parallel over (layer, KV head). Candidates
/// must be valid (validateCandidate) for the layer's head_dim and R, and
/// options.scoreFrom < the layer's tokens. options.residual is not used
/// (each request has its own).
std::vector<LayerErrors>
computeErrors(const std::vector<LayerErrorRequest> &requests,
              const ErrorOptions &options);

/// Convenience form for one layer and one side.
std::vector<CandidateError>
candidateErrors(const LayerStats &layer, Side side,
                const std::vector<Candidate> &candidates,
                const ErrorOptions &options);

/// The calibration-free proxy of E (docs/cost-model.md): relative noise
/// power of the encoding from bits, group size and axis alone,
///   quant: (range(G) / (2^b - 1))^2 / 12 * axisPenalty,
///          range(G) = 2 sqrt(2 ln G) (expected range of G Gaussians in
///          units of their deviation); axisPenalty 4 for per-token keys
///          (outlier channels share a group), 2 for per-channel values
///   fp8:   4^-(m+1) / 3 with m = 3 (e4m3) or 2 (e5m2) mantissa bits
///   fp16:  0;   pruning: not modelled (needs data)
/// times the side weight: keys 2, values 1 (score errors are amplified by
/// the softmax's exponential; values enter the output linearly).
double analyticError(const Candidate &candidate, Side side);

} // namespace cost
} // namespace kvc

#endif // KVC_COSTMODEL_ATTENTIONERROR_H
