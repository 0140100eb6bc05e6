//===- Prune.cpp - Query-driven key channel pruning (ThinK) ---------------===//

#include "kvc/Numerics/Prune.h"

#include "kvc/Numerics/Cache.h"

#include "Check.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kvc {
namespace numerics {

std::string validatePrune(unsigned keep, unsigned headDim,
                          const SideEncoding &element, unsigned residual) {
  if (keep == 0 || keep > headDim)
    return "pruning must keep between 1 and head_dim (" +
           std::to_string(headDim) + ") channels (got " +
           std::to_string(keep) + ")";
  std::string err = validateSideEncoding(element, keep, residual);
  return err.empty() ? "" : "after pruning to " + std::to_string(keep) +
                                " channels: " + err;
}

std::vector<unsigned> selectKeyChannels(const float *queries,
                                        size_t numQueries, const float *keys,
                                        size_t numKeys, size_t headDim,
                                        unsigned keep) {
  KVC_NUMERICS_CHECK(keep >= 1 && keep <= headDim, "bad number of channels");
  std::vector<double> qNorm(headDim, 0.0), kNorm(headDim, 0.0);
  for (size_t i = 0; i < numQueries; ++i)
    for (size_t c = 0; c < headDim; ++c)
      qNorm[c] += double(queries[i * headDim + c]) * queries[i * headDim + c];
  for (size_t j = 0; j < numKeys; ++j)
    for (size_t c = 0; c < headDim; ++c)
      kNorm[c] += double(keys[j * headDim + c]) * keys[j * headDim + c];
  std::vector<double> importance(headDim);
  for (size_t c = 0; c < headDim; ++c)
    importance[c] = std::sqrt(qNorm[c]) * std::sqrt(kNorm[c]);
  std::vector<unsigned> order(headDim);
  std::iota(order.begin(), order.end(), 0u);
  // Stable: equal importance keeps the lower channel.
  std::stable_sort(order.begin(), order.end(), [&](unsigned a, unsigned b) {
    return importance[a] > importance[b];
  });
  order.resize(keep);
  std::sort(order.begin(), order.end());
  return order;
}

std::vector<float> pruneRoundTrip(const float *x, size_t numTokens,
                                  size_t headDim,
                                  const std::vector<unsigned> &keptChannels,
                                  const SideEncoding &element) {
  const size_t keep = keptChannels.size();
  KVC_NUMERICS_CHECK(keep >= 1 && keep <= headDim, "bad kept channels");
  std::vector<float> gathered(numTokens * keep);
  for (size_t t = 0; t < numTokens; ++t)
    for (size_t i = 0; i < keep; ++i) {
      KVC_NUMERICS_CHECK(keptChannels[i] < headDim, "channel out of range");
      gathered[t * keep + i] = x[t * headDim + keptChannels[i]];
    }
  const std::vector<float> encoded =
      compressRoundTrip(gathered.data(), numTokens, keep, element);
  std::vector<float> out(numTokens * headDim, 0.0f);
  for (size_t t = 0; t < numTokens; ++t)
    for (size_t i = 0; i < keep; ++i)
      out[t * headDim + keptChannels[i]] = encoded[t * keep + i];
  return out;
}

} // namespace numerics
} // namespace kvc
