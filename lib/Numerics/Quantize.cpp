//===- Quantize.cpp - Group quantization and fp8 per-token scaling --------===//
//
// This file is compiled with -ffp-contract=off: dequantization is a separate
// fp32 multiply and add by definition (see Quantize.h). Like all IEEE-exact
// code it assumes the default rounding mode and no -ffast-math.
//
//===----------------------------------------------------------------------===//

#include "kvc/Numerics/Quantize.h"

#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Pack.h"

#include "Check.h"

#include <cmath>

namespace kvc {
namespace numerics {

const char *quantAxisName(QuantAxis axis) {
  return axis == QuantAxis::Channel ? "channel" : "token";
}

bool GroupParams::isPoisoned() const {
  return (scale & 0x7C00u) == 0x7C00u && (scale & 0x3FFu) != 0;
}

GroupParams computeGroupParams(const float *x, size_t n, size_t stride,
                               unsigned bits) {
  KVC_NUMERICS_CHECK(n > 0, "a group must not be empty");
  KVC_NUMERICS_CHECK(isSupportedBitWidth(bits), "bit width must be 2/3/4/8");
  float lo = 0.0f, hi = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const float v = saturateToHalfRange(x[i * stride]);
    if (!std::isfinite(v))
      return {kHalfQuietNaN, kHalfQuietNaN};
    if (i == 0 || v < lo)
      lo = v;
    if (i == 0 || v > hi)
      hi = v;
  }
  // Both steps are single IEEE fp32 operations (GPU: sub.f32, div.rn.f32).
  const float range = hi - lo;
  const float scale = range / static_cast<float>(maxCode(bits));
  return {floatToHalf(scale), floatToHalf(lo)};
}

namespace {
/// The code of x given the stored parameters as floats (see Quantize.h).
inline uint8_t codeOf(float x, float zeroF, float scaleF, unsigned top) {
  if (!(scaleF > 0.0f)) // constant group (0) or poisoned (NaN): all codes 0
    return 0;
  const float t = saturateToHalfRange(x) - zeroF;
  float u = t / scaleF;
  u = u > 0.0f ? u : 0.0f; // also maps NaN to 0
  u = u < static_cast<float>(top) ? u : static_cast<float>(top);
  // Round half to even: for 0 <= u < 2^23, adding and subtracting 2^23 makes
  // the fp32 adder round u to an integer (RNE); branch-free.
  const float r = (u + 8388608.0f) - 8388608.0f;
  return static_cast<uint8_t>(r);
}

/// float(code) * scale_f + zero_f: two roundings (this file is built with
/// -ffp-contract=off).
inline float dequantizeCode(uint8_t code, float scaleF, float zeroF) {
  const float prod = static_cast<float>(code) * scaleF;
  return prod + zeroF;
}
} // namespace

uint8_t quantizeValue(float x, GroupParams p, unsigned bits) {
  return codeOf(x, halfToFloat(p.zero), halfToFloat(p.scale), maxCode(bits));
}

float dequantizeValue(uint8_t code, GroupParams p) {
  return dequantizeCode(code, halfToFloat(p.scale), halfToFloat(p.zero));
}

GroupParams quantizeGroup(const float *x, size_t n, size_t stride,
                          unsigned bits, uint8_t *codes) {
  const GroupParams p = computeGroupParams(x, n, stride, bits);
  const float zeroF = halfToFloat(p.zero), scaleF = halfToFloat(p.scale);
  const unsigned top = maxCode(bits);
  for (size_t i = 0; i < n; ++i)
    codes[i] = codeOf(x[i * stride], zeroF, scaleF, top);
  return p;
}

std::string validateQuantSpec(const QuantSpec &spec) {
  if (!isSupportedBitWidth(spec.bits))
    return "bits must be 2, 3, 4 or 8 (got " + std::to_string(spec.bits) + ")";
  if (spec.group == 0 || spec.group % kPackUnitCodes != 0)
    return "group must be a positive multiple of 32, the packing unit (got " +
           std::to_string(spec.group) + ")";
  return "";
}

std::string validateQuantShape(const QuantSpec &spec, size_t tokens,
                               size_t channels) {
  std::string err = validateQuantSpec(spec);
  if (!err.empty())
    return err;
  if (spec.axis == QuantAxis::Token && channels % spec.group != 0)
    return "token-axis group (" + std::to_string(spec.group) +
           ") must divide the channel count (" + std::to_string(channels) +
           ")";
  if (spec.axis == QuantAxis::Channel && tokens % spec.group != 0)
    return "channel-axis group (" + std::to_string(spec.group) +
           ") must divide the token count (" + std::to_string(tokens) + ")";
  return "";
}

size_t quantCodesBytes(const QuantSpec &spec, size_t tokens, size_t channels) {
  return tokens * channels / 8 * spec.bits;
}

size_t quantNumGroups(const QuantSpec &spec, size_t tokens, size_t channels) {
  return tokens * channels / spec.group;
}

std::vector<int64_t> quantCodesShape(const QuantSpec &spec, int64_t tokens,
                                     int64_t channels) {
  const int64_t g = spec.group, b = spec.bits;
  if (spec.axis == QuantAxis::Token)
    return {tokens, channels * b / 8};
  return {tokens / g, channels, g * b / 8};
}

std::vector<int64_t> quantParamsShape(const QuantSpec &spec, int64_t tokens,
                                      int64_t channels) {
  const int64_t g = spec.group;
  if (spec.axis == QuantAxis::Token)
    return {tokens, channels / g};
  return {tokens / g, channels};
}

namespace {
/// Calls fn(groupIndex, firstElement, stride) for every group of the matrix,
/// in the order of the scales/zeros tensors (which is also the codes order).
template <typename Fn>
void forEachGroup(size_t tokens, size_t channels, const QuantSpec &spec,
                  Fn fn) {
  const size_t g = spec.group;
  if (spec.axis == QuantAxis::Token) {
    for (size_t t = 0; t < tokens; ++t)
      for (size_t c = 0; c < channels / g; ++c)
        fn(t * (channels / g) + c, t * channels + c * g, size_t{1});
    return;
  }
  for (size_t tb = 0; tb < tokens / g; ++tb)
    for (size_t d = 0; d < channels; ++d)
      fn(tb * channels + d, tb * g * channels + d, channels);
}

void checkShape(const QuantSpec &spec, size_t tokens, size_t channels) {
  const std::string err = validateQuantShape(spec, tokens, channels);
  KVC_NUMERICS_CHECK(err.empty(), err.c_str());
}
} // namespace

void quantizeMatrix(const float *x, size_t tokens, size_t channels,
                    const QuantSpec &spec, uint8_t *codes, uint16_t *scales,
                    uint16_t *zeros) {
  checkShape(spec, tokens, channels);
  const size_t groupBytes = packedBytes(spec.bits, spec.group);
  std::vector<uint8_t> unpacked(spec.group);
  forEachGroup(tokens, channels, spec,
               [&](size_t gi, size_t first, size_t stride) {
                 const GroupParams p = quantizeGroup(
                     x + first, spec.group, stride, spec.bits, unpacked.data());
                 packCodes(unpacked.data(), spec.group, spec.bits,
                           codes + gi * groupBytes);
                 scales[gi] = p.scale;
                 zeros[gi] = p.zero;
               });
}

void dequantizeMatrix(const uint8_t *codes, const uint16_t *scales,
                      const uint16_t *zeros, size_t tokens, size_t channels,
                      const QuantSpec &spec, float *out) {
  checkShape(spec, tokens, channels);
  const size_t groupBytes = packedBytes(spec.bits, spec.group);
  std::vector<uint8_t> unpacked(spec.group);
  forEachGroup(tokens, channels, spec,
               [&](size_t gi, size_t first, size_t stride) {
                 unpackCodes(codes + gi * groupBytes, spec.group, spec.bits,
                             unpacked.data());
                 const float scaleF = halfToFloat(scales[gi]);
                 const float zeroF = halfToFloat(zeros[gi]);
                 for (size_t i = 0; i < spec.group; ++i)
                   out[first + i * stride] =
                       dequantizeCode(unpacked[i], scaleF, zeroF);
               });
}

QuantizedMatrix quantizeMatrix(const float *x, size_t tokens, size_t channels,
                               const QuantSpec &spec) {
  checkShape(spec, tokens, channels);
  QuantizedMatrix q;
  q.codes.resize(quantCodesBytes(spec, tokens, channels));
  q.scales.resize(quantNumGroups(spec, tokens, channels));
  q.zeros.resize(q.scales.size());
  quantizeMatrix(x, tokens, channels, spec, q.codes.data(), q.scales.data(),
                 q.zeros.data());
  return q;
}

std::vector<float> dequantizeMatrix(const QuantizedMatrix &q, size_t tokens,
                                    size_t channels, const QuantSpec &spec) {
  checkShape(spec, tokens, channels);
  KVC_NUMERICS_CHECK(q.codes.size() == quantCodesBytes(spec, tokens, channels),
                     "codes size does not match the shape");
  KVC_NUMERICS_CHECK(q.scales.size() == quantNumGroups(spec, tokens, channels) &&
                         q.zeros.size() == q.scales.size(),
                     "scales/zeros size does not match the shape");
  std::vector<float> out(tokens * channels);
  dequantizeMatrix(q.codes.data(), q.scales.data(), q.zeros.data(), tokens,
                   channels, spec, out.data());
  return out;
}

uint16_t computeFP8TokenScale(const float *x, size_t channels,
                              FP8Format format) {
  float amax = 0.0f;
  for (size_t i = 0; i < channels; ++i) {
    const float v = saturateToHalfRange(x[i]);
    if (!std::isfinite(v))
      return kHalfQuietNaN;
    amax = std::fabs(v) > amax ? std::fabs(v) : amax;
  }
  const uint16_t scale = floatToHalf(amax / fp8MaxFinite(format));
  return scale == 0 ? uint16_t{0x0001} : scale; // never divide by zero
}

uint8_t quantizeFP8Value(float x, uint16_t scale, FP8Format format) {
  return floatToFP8(saturateToHalfRange(x) / halfToFloat(scale), format,
                    /*saturate=*/true);
}

float dequantizeFP8Value(uint8_t code, uint16_t scale, FP8Format format) {
  return fp8ToFloat(code, format) * halfToFloat(scale);
}

void quantizeFP8Matrix(const float *x, size_t tokens, size_t channels,
                       FP8Format format, uint8_t *codes, uint16_t *scales) {
  for (size_t t = 0; t < tokens; ++t) {
    const float *row = x + t * channels;
    scales[t] = computeFP8TokenScale(row, channels, format);
    for (size_t c = 0; c < channels; ++c)
      codes[t * channels + c] = quantizeFP8Value(row[c], scales[t], format);
  }
}

void dequantizeFP8Matrix(const uint8_t *codes, const uint16_t *scales,
                         size_t tokens, size_t channels, FP8Format format,
                         float *out) {
  for (size_t t = 0; t < tokens; ++t)
    for (size_t c = 0; c < channels; ++c)
      out[t * channels + c] =
          dequantizeFP8Value(codes[t * channels + c], scales[t], format);
}

} // namespace numerics
} // namespace kvc
