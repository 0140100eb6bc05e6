//===- Cache.cpp - What a compressed cache means --------------------------===//

#include "kvc/Numerics/Cache.h"

#include "kvc/Numerics/Half.h"

#include "Check.h"

namespace kvc {
namespace numerics {

void compressRoundTrip(const float *x, size_t numTokens, size_t headDim,
                       const SideEncoding &side, float *out) {
  KVC_NUMERICS_CHECK(numTokens % side.tokenGranularity() == 0,
                     "token count must be a multiple of the channel-axis group");
  const size_t n = numTokens * headDim;
  switch (side.kind) {
  case SideEncoding::Kind::Plain:
    for (size_t i = 0; i < n; ++i)
      out[i] = roundToHalf(x[i]);
    return;
  case SideEncoding::Kind::Quant: {
    const QuantizedMatrix q = quantizeMatrix(x, numTokens, headDim, side.quant);
    dequantizeMatrix(q.codes.data(), q.scales.data(), q.zeros.data(),
                     numTokens, headDim, side.quant, out);
    return;
  }
  case SideEncoding::Kind::FP8: {
    std::vector<uint8_t> codes(n);
    std::vector<uint16_t> scales(numTokens);
    quantizeFP8Matrix(x, numTokens, headDim, side.fp8, codes.data(),
                      scales.data());
    dequantizeFP8Matrix(codes.data(), scales.data(), numTokens, headDim,
                        side.fp8, out);
    return;
  }
  }
}

std::vector<float> compressRoundTrip(const float *x, size_t numTokens,
                                     size_t headDim, const SideEncoding &side) {
  std::vector<float> out(numTokens * headDim);
  compressRoundTrip(x, numTokens, headDim, side, out.data());
  return out;
}

std::vector<float> simulateCacheSide(const float *x, size_t numTokens,
                                     size_t headDim, const SideEncoding &side,
                                     unsigned residual) {
  const std::string err =
      validateSideEncoding(side, static_cast<unsigned>(headDim), residual);
  KVC_NUMERICS_CHECK(err.empty(), err.c_str());
  std::vector<float> out(numTokens * headDim);
  const size_t compressed = compressedTokenCount(numTokens, residual);
  compressRoundTrip(x, compressed, headDim, side, out.data());
  for (size_t i = compressed * headDim; i < numTokens * headDim; ++i)
    out[i] = roundToHalf(x[i]);
  return out;
}

SimulatedCache simulateCache(const float *keys, const float *values,
                             size_t numHeads, size_t numTokens, size_t headDim,
                             const CacheEncoding &enc) {
  SimulatedCache c;
  const size_t perHead = numTokens * headDim;
  c.keys.reserve(numHeads * perHead);
  c.values.reserve(numHeads * perHead);
  for (size_t h = 0; h < numHeads; ++h) {
    std::vector<float> k = simulateCacheSide(keys + h * perHead, numTokens,
                                             headDim, enc.key, enc.residual);
    std::vector<float> v = simulateCacheSide(
        values + h * perHead, numTokens, headDim, enc.value, enc.residual);
    c.keys.insert(c.keys.end(), k.begin(), k.end());
    c.values.insert(c.values.end(), v.begin(), v.end());
  }
  return c;
}

} // namespace numerics
} // namespace kvc
