//===- Cache.h - What a compressed cache means ------------------*- C++ -*-===//
//
// The dequantized view of a compressed cache: this is the semantics every
// implementation (runtime pages, CPU loops, GPU kernels) must reproduce, and
// what the reference attention and the cost model read.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_NUMERICS_CACHE_H
#define KVC_NUMERICS_CACHE_H

#include "kvc/Numerics/Encoding.h"

#include <cstddef>
#include <vector>

namespace kvc {
namespace numerics {

/// Compress-then-decompress all rows of x [n][D] with `side` (the matrix form
/// of Quantize.h; Plain: fp16 rounding, overflow -> Inf like a cvt). n must be
/// a multiple of side.tokenGranularity(). Writes [n][D] to `out`.
void compressRoundTrip(const float *x, size_t numTokens, size_t headDim,
                       const SideEncoding &side, float *out);
std::vector<float> compressRoundTrip(const float *x, size_t numTokens,
                                     size_t headDim, const SideEncoding &side);

/// One side of one head of a cache holding n tokens: rows below
/// compressedTokenCount(n, R) are compressRoundTrip'ed, the rest are the fp16
/// residual (fp16-rounded). Checks validateSideEncoding(side, D, R).
std::vector<float> simulateCacheSide(const float *x, size_t numTokens,
                                     size_t headDim, const SideEncoding &side,
                                     unsigned residual);

/// Dequantized K and V views, each [H][n][D].
struct SimulatedCache {
  std::vector<float> keys;
  std::vector<float> values;
};

/// Both sides of a cache of `numHeads` kv heads holding n tokens; k and v
/// are [H][n][D].
SimulatedCache simulateCache(const float *keys, const float *values,
                             size_t numHeads, size_t numTokens, size_t headDim,
                             const CacheEncoding &enc);

} // namespace numerics
} // namespace kvc

#endif // KVC_NUMERICS_CACHE_H
