//===- Layout.cpp - kvc page layout, version 2 ----------------------------===//

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

size_t channelPairHalfOffset(size_t channel, size_t offset, size_t groupBytes) {
  const size_t side = channel % 2, word = offset / 4, half = offset % 4 / 2;
  return (channel - side) * groupBytes + 8 * word + 4 * half + 2 * side +
         offset % 2;
}

namespace {
/// Matrix-form channel-axis codes ([rows][D][groupBytes]) to the page's
/// channel-pair order, or back with `toPage` false.
void permuteChannelPairs(const uint8_t *in, size_t rows, size_t d,
                         size_t groupBytes, bool toPage, uint8_t *out) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < d; ++c) {
      const size_t row = r * d * groupBytes;
      // An odd D's last channel has no partner: it stays in place.
      const bool paired = c + 1 < d || c % 2 == 1;
      for (size_t o = 0; o < groupBytes; ++o) {
        const size_t matrix = row + c * groupBytes + o;
        const size_t page =
            paired ? row + channelPairHalfOffset(c, o, groupBytes) : matrix;
        if (toPage)
          out[page] = in[matrix];
        else
          out[matrix] = in[page];
      }
    }
}
} // namespace

ParamsOffsets channelAxisParamsOffsets(size_t group, size_t headDim) {
  const size_t channel = group % headDim, side = channel % 2;
  if (channel + 1 == headDim && side == 0)
    return {4 * group, 4 * group + 2}; // an odd D's unpaired last channel
  const size_t pair = 4 * (group - side);
  return {pair + 2 * side, pair + 4 + 2 * side};
}

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
    uint8_t *rows = codes + firstToken * d / 8 * side.quant.bits;
    if (side.isChannelAxis()) {
      const size_t groupBytes = size_t{side.quant.group} * side.quant.bits / 8;
      permuteChannelPairs(q.codes.data(), numTokens / side.quant.group, d,
                          groupBytes, /*toPage=*/true, rows);
      for (size_t g = 0; g < q.scales.size(); ++g) {
        const ParamsOffsets at = channelAxisParamsOffsets(firstGroup + g, d);
        store16(q.scales[g], params + at.scale);
        store16(q.zeros[g], params + at.zero);
      }
      return;
    }
    std::memcpy(rows, q.codes.data(), q.codes.size());
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
    const uint8_t *rows = codes + firstToken * d / 8 * side.quant.bits;
    std::vector<uint8_t> matrix;
    for (size_t g = 0; g < numGroups; ++g) {
      ParamsOffsets at{4 * (firstGroup + g), 4 * (firstGroup + g) + 2};
      if (side.isChannelAxis())
        at = channelAxisParamsOffsets(firstGroup + g, d);
      scales[g] = load16(params + at.scale);
      zeros[g] = load16(params + at.zero);
    }
    if (side.isChannelAxis()) {
      // Back to the matrix form's channel order.
      const size_t groupBytes = size_t{side.quant.group} * side.quant.bits / 8;
      const size_t groupRows = numTokens / side.quant.group;
      matrix.resize(groupRows * d * groupBytes);
      permuteChannelPairs(rows, groupRows, d, groupBytes, /*toPage=*/false,
                          matrix.data());
      rows = matrix.data();
    }
    dequantizeMatrix(rows, scales.data(), zeros.data(), numTokens, d,
                     side.quant, out);
    return;
  }
  }
}

} // namespace numerics
} // namespace kvc
