//===- Layout.cpp - kvc page layout, version 1 ----------------------------===//

#include "kvc/Numerics/Layout.h"

#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Pack.h"
#include "kvc/Numerics/Quantize.h"

#include "Check.h"

#include <cstring>
#include <vector>

namespace kvc {
namespace numerics {

namespace {
void store16(uint16_t v, uint8_t *p) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

uint16_t load16(const uint8_t *p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

void checkPage(const SideEncoding &side, unsigned headDim, unsigned pageTokens,
               size_t firstToken, size_t numTokens) {
  const std::string err = validatePageConfig(side, headDim, pageTokens);
  KVC_NUMERICS_CHECK(err.empty(), err.c_str());
  KVC_NUMERICS_CHECK(firstToken + numTokens <= pageTokens,
                     "tokens beyond the end of the page");
  KVC_NUMERICS_CHECK(firstToken % side.tokenGranularity() == 0 &&
                         numTokens % side.tokenGranularity() == 0,
                     "channel-axis pages are written in whole groups");
}
} // namespace

std::string validatePageConfig(const SideEncoding &side, unsigned headDim,
                               unsigned pageTokens) {
  if (headDim == 0)
    return "head_dim must be positive";
  if (pageTokens == 0 || pageTokens % kPackUnitCodes != 0)
    return "page tokens must be a positive multiple of 32 (got " +
           std::to_string(pageTokens) + ")";
  if (!side.isQuant())
    return "";
  std::string err = validateQuantShape(side.quant, pageTokens, headDim);
  if (!err.empty())
    return err;
  if (side.isChannelAxis() && pageTokens % side.quant.group != 0)
    return "page tokens (" + std::to_string(pageTokens) +
           ") must be a multiple of the channel-axis group";
  return "";
}

BlockLayout computeBlockLayout(const SideEncoding &side, unsigned headDim,
                               unsigned pageTokens) {
  const std::string err = validatePageConfig(side, headDim, pageTokens);
  KVC_NUMERICS_CHECK(err.empty(), err.c_str());
  const size_t t = pageTokens, d = headDim;
  BlockLayout l;
  switch (side.kind) {
  case SideEncoding::Kind::Plain:
    l.codesBytes = t * d * 2;
    break;
  case SideEncoding::Kind::FP8:
    l.codesBytes = t * d;
    l.paramsCount = t;
    l.paramsBytes = t * 2;
    break;
  case SideEncoding::Kind::Quant:
    l.codesBytes = quantCodesBytes(side.quant, t, d);
    l.paramsCount = quantNumGroups(side.quant, t, d);
    l.paramsBytes = l.paramsCount * 4;
    break;
  }
  l.paramsOffset = alignTo(l.codesOffset + l.codesBytes, kLayoutAlignment);
  l.blockBytes = alignTo(l.paramsOffset + l.paramsBytes, kLayoutAlignment);
  return l;
}

double bytesPerToken(const SideEncoding &side, unsigned headDim,
                     unsigned pageTokens) {
  return static_cast<double>(
             computeBlockLayout(side, headDim, pageTokens).blockBytes) /
         pageTokens;
}

double cacheBytesPerToken(const CacheEncoding &enc, unsigned headDim,
                          unsigned pageTokens) {
  return bytesPerToken(enc.key, headDim, pageTokens) +
         bytesPerToken(enc.value, headDim, pageTokens);
}

size_t residualStagingBytes(unsigned residual, unsigned headDim) {
  return alignTo(size_t{residual} * headDim * 2, kLayoutAlignment);
}

void writePageTokens(const float *x, size_t firstToken, size_t numTokens,
                     const SideEncoding &side, unsigned headDim,
                     unsigned pageTokens, uint8_t *block) {
  checkPage(side, headDim, pageTokens, firstToken, numTokens);
  if (numTokens == 0)
    return;
  const BlockLayout l = computeBlockLayout(side, headDim, pageTokens);
  const size_t d = headDim;
  uint8_t *codes = block + l.codesOffset;
  uint8_t *params = block + l.paramsOffset;
  switch (side.kind) {
  case SideEncoding::Kind::Plain:
    for (size_t i = 0; i < numTokens * d; ++i)
      store16(floatToHalf(x[i]), codes + 2 * (firstToken * d + i));
    return;
  case SideEncoding::Kind::FP8: {
    std::vector<uint16_t> scales(numTokens);
    quantizeFP8Matrix(x, numTokens, d, side.fp8, codes + firstToken * d,
                      scales.data());
    for (size_t t = 0; t < numTokens; ++t)
      store16(scales[t], params + 2 * (firstToken + t));
    return;
  }
  case SideEncoding::Kind::Quant: {
    // For both axes the rows [first, first+n) are one contiguous slice of
    // the codes region and of the params region, at the same offsets as in
    // the matrix form of the whole page.
    const QuantizedMatrix q = quantizeMatrix(x, numTokens, d, side.quant);
    const size_t firstGroup = firstToken * d / side.quant.group;
    std::memcpy(codes + firstToken * d / 8 * side.quant.bits, q.codes.data(),
                q.codes.size());
    for (size_t g = 0; g < q.scales.size(); ++g) {
      store16(q.scales[g], params + 4 * (firstGroup + g));
      store16(q.zeros[g], params + 4 * (firstGroup + g) + 2);
    }
    return;
  }
  }
}

void readPageTokens(const uint8_t *block, size_t firstToken, size_t numTokens,
                    const SideEncoding &side, unsigned headDim,
                    unsigned pageTokens, float *out) {
  checkPage(side, headDim, pageTokens, firstToken, numTokens);
  if (numTokens == 0)
    return;
  const BlockLayout l = computeBlockLayout(side, headDim, pageTokens);
  const size_t d = headDim;
  const uint8_t *codes = block + l.codesOffset;
  const uint8_t *params = block + l.paramsOffset;
  switch (side.kind) {
  case SideEncoding::Kind::Plain:
    for (size_t i = 0; i < numTokens * d; ++i)
      out[i] = halfToFloat(load16(codes + 2 * (firstToken * d + i)));
    return;
  case SideEncoding::Kind::FP8: {
    std::vector<uint16_t> scales(numTokens);
    for (size_t t = 0; t < numTokens; ++t)
      scales[t] = load16(params + 2 * (firstToken + t));
    dequantizeFP8Matrix(codes + firstToken * d, scales.data(), numTokens, d,
                        side.fp8, out);
    return;
  }
  case SideEncoding::Kind::Quant: {
    const size_t numGroups = quantNumGroups(side.quant, numTokens, d);
    const size_t firstGroup = firstToken * d / side.quant.group;
    std::vector<uint16_t> scales(numGroups), zeros(numGroups);
    for (size_t g = 0; g < numGroups; ++g) {
      scales[g] = load16(params + 4 * (firstGroup + g));
      zeros[g] = load16(params + 4 * (firstGroup + g) + 2);
    }
    dequantizeMatrix(codes + firstToken * d / 8 * side.quant.bits,
                     scales.data(), zeros.data(), numTokens, d, side.quant,
                     out);
    return;
  }
  }
}

} // namespace numerics
} // namespace kvc
