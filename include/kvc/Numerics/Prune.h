//===- Prune.h - Query-driven key channel pruning (ThinK) -------*- C++ -*-===//
//
// What `#kvc.prune<keep = N>` means: of the head_dim key channels of one KV
// head, only the N with the largest importance are stored; the others read as
// zero, so they drop out of every score q.k. The importance of channel c is
// ||Q[:, c]||_2 * ||K[:, c]||_2 over the queries of the head's query group and
// the keys being compressed (ThinK's query-driven criterion; at run time the
// queries are the prefill's observation window). Ties keep the lower channel.
// The kept channels are then encoded with the side's element encoding as an
// [n][N] matrix (so token-axis groups run over kept channels only).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_NUMERICS_PRUNE_H
#define KVC_NUMERICS_PRUNE_H

#include "kvc/Numerics/Encoding.h"

#include <cstddef>
#include <string>
#include <vector>

namespace kvc {
namespace numerics {

/// "" if keeping `keep` of `headDim` channels is valid (0 < keep <= D) and
/// `element` is valid for the reduced dimension `keep` under residual R.
std::string validatePrune(unsigned keep, unsigned headDim,
                          const SideEncoding &element, unsigned residual);

/// The `keep` most important channels (ascending). queries is
/// [numQueries][D] (any rows: several heads stacked), keys [numKeys][D].
std::vector<unsigned> selectKeyChannels(const float *queries,
                                        size_t numQueries, const float *keys,
                                        size_t numKeys, size_t headDim,
                                        unsigned keep);

/// Compress-then-decompress of pruned keys: the kept channels of x [n][D]
/// are gathered into [n][keep], round-tripped with `element`
/// (compressRoundTrip), and scattered back; dropped channels are 0.
std::vector<float> pruneRoundTrip(const float *x, size_t numTokens,
                                  size_t headDim,
                                  const std::vector<unsigned> &keptChannels,
                                  const SideEncoding &element);

} // namespace numerics
} // namespace kvc

#endif // KVC_NUMERICS_PRUNE_H
