//===- FoldedScales.cpp - The tensor-core passes' folded scales -----------===//

#include "kvc/Numerics/FoldedScales.h"

#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Quantize.h"

#include "Check.h"

#include <algorithm>
#include <cmath>

namespace kvc {
namespace numerics {

bool foldsKeyScales(const SideEncoding &side) {
  return side.kind == SideEncoding::Kind::Quant &&
         side.quant.axis == QuantAxis::Channel &&
         (side.quant.bits == 2 || side.quant.bits == 4 || side.quant.bits == 8);
}

bool foldsValueScales(const SideEncoding &side, size_t headDim) {
  return side.kind == SideEncoding::Kind::Quant &&
         side.quant.axis == QuantAxis::Token && side.quant.group == headDim &&
         (side.quant.bits == 2 || side.quant.bits == 4 || side.quant.bits == 8);
}

double foldedKeyQueryScale(const SideEncoding &side) {
  KVC_NUMERICS_CHECK(foldsKeyScales(side),
                     "folded keys are channel-axis 2/4/8-bit codes");
  return std::ldexp(1.0, int(side.quant.bits) - 4);
}

CompressedTerms simulateCompressedTerms(const float *x, size_t numTokens,
                                        size_t headDim,
                                        const SideEncoding &side,
                                        unsigned residual) {
  const std::string err =
      validateSideEncoding(side, static_cast<unsigned>(headDim), residual);
  KVC_NUMERICS_CHECK(err.empty(), err.c_str());
  KVC_NUMERICS_CHECK(foldsKeyScales(side),
                     "folded keys are channel-axis 2/4/8-bit codes");
  CompressedTerms terms;
  terms.tokens = compressedTokenCount(numTokens, residual);
  terms.queryScale = foldedKeyQueryScale(side);
  const size_t d = headDim, n = terms.tokens * d, group = side.quant.group;
  const QuantizedMatrix q = quantizeMatrix(x, terms.tokens, d, side.quant);
  // The codes: the matrix form dequantized with scale 1 and zero 0.
  const size_t groups = quantNumGroups(side.quant, terms.tokens, d);
  std::vector<uint16_t> ones(groups, floatToHalf(1.0f)), nil(groups, 0);
  std::vector<float> codes(n);
  dequantizeMatrix(q.codes.data(), ones.data(), nil.data(), terms.tokens, d,
                   side.quant, codes.data());
  terms.codes.resize(n);
  terms.scales.resize(n);
  terms.zeros.resize(n);
  for (size_t t = 0; t < terms.tokens; ++t)
    for (size_t c = 0; c < d; ++c) {
      // Channel-axis groups: [tokens / G][D] (Quantize.h).
      const size_t i = t * d + c, g = t / group * d + c;
      terms.codes[i] = static_cast<uint8_t>(codes[i]);
      terms.scales[i] = q.scales[g];
      terms.zeros[i] = q.zeros[g];
    }
  return terms;
}

void foldKeyRows(const float *q, const CompressedTerms &terms, size_t headDim,
                 float *keys) {
  const size_t d = headDim;
  for (size_t c = 0; c < d; ++c) {
    // q times a power of two is exact in f32; the product of two fp16
    // values is exact in f32, then rounded once as HMUL2 does.
    const float query = roundToHalf(q[c]);
    const float scaledQuery =
        roundToHalf(q[c] * static_cast<float>(terms.queryScale));
    if (query == 0.0f)
      continue;
    for (size_t t = 0; t < terms.tokens; ++t) {
      const size_t i = t * d + c;
      const double scaled =
          roundToHalf(scaledQuery * halfToFloat(terms.scales[i]));
      const double term = scaled * terms.codes[i] +
                          double(scaledQuery) * halfToFloat(terms.zeros[i]);
      keys[i] = static_cast<float>(term / terms.queryScale / query);
    }
  }
}

std::vector<double>
foldedKeyAttention(const float *q, size_t numQueryHeads, const float *keys,
                   const float *values, size_t numKVHeads, size_t numKeys,
                   size_t headDim, const std::vector<const CompressedTerms *> &terms,
                   const AttentionOptions &opts, double *mass) {
  KVC_NUMERICS_CHECK(terms.size() == numKVHeads,
                     "one (possibly null) terms entry a KV head");
  KVC_NUMERICS_CHECK(numKVHeads > 0 && numQueryHeads % numKVHeads == 0,
                     "Hkv must divide Hq");
  const size_t d = headDim, n = numKeys, group = numQueryHeads / numKVHeads;
  std::vector<float> queries(q, q + numQueryHeads * d);
  for (float &x : queries)
    x = roundToHalf(x);
  std::vector<double> out(numQueryHeads * d);
  for (size_t h = 0; h < numKVHeads; ++h) {
    AttentionOptions head = opts;
    if (opts.keep)
      head.keep = opts.keep + h * n;
    // Per-head mask rows: this KV head's query heads' (one a call below).
    if (opts.mask && opts.maskPerHead)
      head.mask = opts.mask + h * group * n;
    double *headMass = mass ? mass + h * n : nullptr;
    const float *headKeys = keys + h * n * d, *headValues = values + h * n * d;
    if (!terms[h]) {
      std::vector<double> rows =
          referenceAttention(queries.data() + h * group * d, group, 1,
                             headKeys, headValues, 1, n, d, head, headMass);
      std::copy(rows.begin(), rows.end(), out.begin() + h * group * d);
      continue;
    }
    for (size_t j = h * group; j < (h + 1) * group; ++j) {
      AttentionOptions rowOptions = head;
      if (opts.mask && opts.maskPerHead)
        rowOptions.mask = opts.mask + j * n;
      std::vector<float> seen(headKeys, headKeys + n * d);
      foldKeyRows(q + j * d, *terms[h], d, seen.data());
      std::vector<double> row =
          referenceAttention(queries.data() + j * d, 1, 1, seen.data(),
                             headValues, 1, n, d, rowOptions, headMass);
      std::copy(row.begin(), row.end(), out.begin() + j * d);
    }
  }
  return out;
}

} // namespace numerics
} // namespace kvc
