//===- Eviction.cpp - Token budgets in the cost model ---------------------===//

#include "kvc/CostModel/Eviction.h"

#include "ForEachKVHead.h"

#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/ReferenceAttention.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <sstream>

namespace kvc {
namespace cost {

std::string makeTokenBudget(double fraction, size_t context,
                            unsigned residual, size_t calibrationTokens,
                            TokenBudget &out) {
  assert(fraction > 0.0 && fraction < 1.0 && context > 0);
  TokenBudget b;
  b.fraction = fraction;
  b.policy.kind = numerics::EvictKind::H2O;
  b.policy.sink = kEvictSink;
  b.policy.window = std::max(residual, 1u);
  b.policy.budget = size_t(std::llround(fraction * double(context)));
  b.calibration = b.policy;
  if (calibrationTokens)
    b.calibration.budget = size_t(std::llround(
        fraction * double(std::min(context, calibrationTokens))));
  b.keepFraction = double(b.policy.budget) / double(context);
  std::ostringstream os;
  os << "token budget " << fraction << " x " << context << " = "
     << b.policy.budget;
  std::string problem = numerics::checkEvictPolicy(b.policy);
  if (!problem.empty())
    return os.str() + ": " + problem;
  problem = numerics::checkEvictPolicy(b.calibration);
  if (!problem.empty())
    return os.str() + ", " + std::to_string(b.calibration.budget) + " of the " +
           std::to_string(calibrationTokens) + " calibration tokens: " +
           problem;
  out = b;
  return "";
}

std::string checkEvictFractions(const std::vector<double> &fractions) {
  if (fractions.empty())
    return "evict-fractions is empty (give at least one fraction in (0, 1])";
  for (size_t i = 0; i < fractions.size(); ++i) {
    const double f = fractions[i];
    std::ostringstream os;
    os << f;
    if (!(f > 0.0 && f <= 1.0))
      return "evict fraction " + os.str() +
             " is not in (0, 1] (the share of the context's tokens kept)";
    for (size_t j = 0; j < i; ++j)
      if (fractions[j] == f)
        return "evict fraction " + os.str() + " is listed twice";
  }
  return "";
}

namespace {
/// One (request, KV head): the policy run step by step over the tokens.
void simulateHead(const EvictionRequest &request, size_t kvHead,
                  const ErrorOptions &options, EvictionErrors &out) {
  const LayerStats &layer = *request.layer;
  const size_t group = layer.numQueryHeads / layer.numKVHeads;
  const size_t n = layer.numTokens, dim = layer.headDim;
  // The fp16 cache, as the error kernels see it.
  std::vector<float> keys(n * dim), values(n * dim);
  const size_t base = kvHead * n * dim;
  for (size_t i = 0; i < n * dim; ++i) {
    keys[i] = numerics::roundToHalf(layer.keys[base + i]);
    values[i] = numerics::roundToHalf(layer.values[base + i]);
  }
  // The group's queries, [group][n][D].
  std::vector<float> queries(group * n * dim);
  std::copy_n(layer.queries.begin() + kvHead * group * n * dim,
              group * n * dim, queries.begin());

  numerics::AttentionOptions attention;
  attention.scale = options.scale;
  // Every position of the unevicted cache at once.
  const std::vector<double> reference = numerics::referenceAttention(
      queries.data(), group, n, keys.data(), values.data(), 1, n, dim,
      attention);

  std::vector<uint8_t> keep(n, 0);
  std::vector<double> mass(n, 0.0);
  std::vector<float> scores(n, 0.0f);
  std::vector<float> query(group * dim);
  std::vector<uint32_t> &liveUntil = out.liveUntil[kvHead];
  liveUntil.assign(n, kNeverEvicted);
  double numerator = 0.0, denominator = 0.0;
  const bool scored = request.policy.kind != numerics::EvictKind::Streaming;
  for (size_t p = 0; p < n; ++p) {
    keep[p] = 1;
    for (size_t h = 0; h < group; ++h)
      std::copy_n(queries.data() + (h * n + p) * dim, dim,
                  query.data() + h * dim);
    attention.keep = keep.data();
    const std::vector<double> o = numerics::referenceAttention(
        query.data(), group, 1, keys.data(), values.data(), 1, p + 1, dim,
        attention, scored ? mass.data() : nullptr);
    if (p >= options.scoreFrom)
      for (size_t h = 0; h < group; ++h)
        for (size_t d = 0; d < dim; ++d) {
          const double ref = reference[(h * n + p) * dim + d];
          const double diff = o[h * dim + d] - ref;
          numerator += diff * diff;
          denominator += ref * ref;
        }
    for (size_t j = 0; scored && j <= p; ++j)
      scores[j] = float(mass[j]);
    std::vector<uint8_t> before(keep.begin(), keep.begin() + p + 1);
    numerics::selectKeptTokens(request.policy, scores.data(), p + 1,
                               keep.data());
    for (size_t j = 0; j <= p; ++j)
      if (before[j] && !keep[j])
        liveUntil[j] = uint32_t(p);
  }
  out.error.numerator[kvHead] = numerator;
  out.error.denominator[kvHead] = denominator;
}
} // namespace

std::vector<EvictionErrors>
simulateEvictions(const std::vector<EvictionRequest> &requests,
                  const ErrorOptions &options) {
  std::vector<EvictionErrors> results(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const LayerStats &layer = *requests[i].layer;
    assert(options.scoreFrom < layer.numTokens && "nothing to score");
    assert(numerics::checkEvictPolicy(requests[i].policy).empty());
    results[i].error.numerator.assign(layer.numKVHeads, 0.0);
    results[i].error.denominator.assign(layer.numKVHeads, 0.0);
    results[i].liveUntil.resize(layer.numKVHeads);
  }
  forEachKVHead(requests, options.threads, [&](size_t request, size_t kvHead) {
    simulateHead(requests[request], kvHead, options, results[request]);
  });
  return results;
}

} // namespace cost
} // namespace kvc
