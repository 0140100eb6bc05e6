//===- ReferenceAttention.h - fp64 attention oracle -------------*- C++ -*-===//
//
// Attention in double precision over (dequantized) cache views: the oracle for
// compiled code and the error measure of the cost model.
//
// Shapes: q [Hq][Lq][D], k/v [Hkv][n][D], output [Hq][Lq][D]. Query head h
// reads kv head h / (Hq/Hkv) (GQA). Query i sits at absolute position
// p = n - Lq + i. Key j is visible iff (!causal || j <= p) and
// (window == 0 || j > p - window). Scores s = scale * q.k, then, with a
// softcap c > 0, s = c * tanh(s / c), then plus the mask's bias (kvc.attend's
// `mask` operand), if any; softmax over the visible keys; output =
// sum softmax_j * v_j.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_NUMERICS_REFERENCEATTENTION_H
#define KVC_NUMERICS_REFERENCEATTENTION_H

#include "kvc/Numerics/Encoding.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvc {
namespace numerics {

struct AttentionOptions {
  double scale = 0.0;   ///< 0 means 1/sqrt(head_dim)
  bool causal = true;   ///< key position <= query position
  size_t window = 0;    ///< sliding window W (keys with j > p - W); 0 = none
  double softcap = 0.0; ///< c * tanh(s / c) on the scores; 0 = off
  /// Evicted tokens (kvc/Numerics/Evict.h): [Hkv][n], 0 = evicted, invisible
  /// to every query of that KV head. Null: every token is live.
  const uint8_t *keep = nullptr;
  /// Added to the scores after the softcap: [Lq][n] for every query head,
  /// or [Hq][Lq][n] with maskPerHead. -inf hides a key. Null: no mask.
  const float *mask = nullptr;
  bool maskPerHead = false;
};

/// Attention of q over the views k/v (see the file comment). Requires
/// Hkv | Hq and Lq <= n; every query sees at least one live key. With `mass`
/// non-null ([Hkv][n]), adds to it the attention mass of every key: its
/// softmax probability summed over the query heads of its KV head and over
/// the Lq query positions (what H2O and SnapKV rank tokens by).
std::vector<double> referenceAttention(const float *q, size_t numQueryHeads,
                                       size_t queryLen, const float *keys,
                                       const float *values, size_t numKVHeads,
                                       size_t numKeys, size_t headDim,
                                       const AttentionOptions &opts,
                                       double *mass = nullptr);

/// Teacher-forced prefill over N tokens under a compressed cache: query
/// position p attends to a cache holding n = p + 1 tokens, so keys/values
/// j < compressedTokenCount(p + 1, R) are read from the compressed view and
/// the others (up to p) from the fp16 view. Because groups never straddle the
/// compressed prefix (a multiple of R, itself a multiple of the channel-axis
/// group), the compressed view is computed once for the longest prefix and
/// shared by every p. q [Hq][N][D], k/v [Hkv][N][D]; opts.causal must be true.
/// Returns the outputs of query positions firstQuery..N-1:
/// [Hq][N - firstQuery][D].
std::vector<double> teacherForcedAttention(const float *q, const float *keys,
                                           const float *values,
                                           size_t numQueryHeads,
                                           size_t numKVHeads, size_t seqLen,
                                           size_t headDim,
                                           const CacheEncoding &enc,
                                           const AttentionOptions &opts,
                                           size_t firstQuery = 0);

/// ||a - ref||_F / ||ref||_F.
double relativeError(const std::vector<double> &a,
                     const std::vector<double> &ref);

} // namespace numerics
} // namespace kvc

#endif // KVC_NUMERICS_REFERENCEATTENTION_H
