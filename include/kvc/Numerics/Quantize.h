//===- Quantize.h - Group quantization and fp8 per-token scaling -*- C++ -*-===//
//
// The one definition of what the compressed cache stores. Everything that
// compresses (runtime, CPU loops, GPU kernels, constant folding) must agree
// with these functions bit for bit.
//
// Asymmetric uniform group quantization, b in {2,3,4,8}, all arithmetic fp32
// with IEEE round-to-nearest-even (no fused multiply-add anywhere):
//   x'    = saturateToHalfRange(x)             (clamp to +-65504, -0 -> +0)
//   scale = fp16( (max x' - min x') / (2^b - 1) )   (fp32 sub, fp32 true div)
//   zero  = fp16( min x' )
//   code  = clamp(rne((x' - zero_f) / scale_f), 0, 2^b - 1)
//           (zero_f/scale_f are the stored fp16 values as floats; 0 if
//            scale_f == 0, i.e. a constant or almost-constant group)
//   deq   = float(code) * scale_f + zero_f     (a mul then an add, NOT an fma:
//           a GPU that fuses them may differ by 1 ulp)
// A constant group of fp16-representable values dequantizes exactly.
// Poisoned groups: if any input of a group is NaN or +-Inf, scale and zero are
// stored as fp16 quiet NaN (0x7E00) and all codes are 0, so every element of
// the group dequantizes to NaN - just as NaN/Inf in an fp16 cache would poison
// attention.
//
// fp8 (E4M3FN | E5M2) with one fp16 scale per token (D values):
//   amax  = max |x'| over the token (NaN if any input is NaN or +-Inf)
//   scale = fp16(amax / fmax), fmax = 448 (e4m3) | 57344 (e5m2); if that is
//           +0 (amax == 0 or fp16 underflow) the scale is the smallest fp16
//           subnormal 2^-24 (0x0001), so zeros encode exactly and tiny tokens
//           keep their precision.
//   code  = fp8_satfinite_rne(x' / scale_f)    (NaN scale -> NaN codes)
//   deq   = fp8ToFloat(code) * scale_f
//
// Matrix forms (the kvc.quantize op's tensors); x is row-major [T][D]:
//   axis=token,   group G | D: codes u8 [T][D*b/8], scales/zeros f16 [T][D/G]
//   axis=channel, group G | T: codes u8 [T/G][D][G*b/8], scales/zeros
//                              f16 [T/G][D]
//   fp8: codes u8 [T][D], scales f16 [T]
// Inside a group, codes are packed in group order (channel order for token
// axis, token order for channel axis) with the 32-code units of Pack.h.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_NUMERICS_QUANTIZE_H
#define KVC_NUMERICS_QUANTIZE_H

#include "kvc/Numerics/FP8.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kvc {
namespace numerics {

/// Which way a quantization group runs. Channel: G consecutive tokens of one
/// channel (keys, KIVI). Token: G consecutive channels of one token (values).
enum class QuantAxis : uint8_t { Channel, Token };

/// "channel" / "token".
const char *quantAxisName(QuantAxis axis);

/// One group's stored parameters, as fp16 bits.
struct GroupParams {
  uint16_t scale = 0;
  uint16_t zero = 0;
  bool isPoisoned() const;
};

/// Largest code of a b-bit quantizer: 2^b - 1.
inline unsigned maxCode(unsigned bits) { return (1u << bits) - 1u; }

/// Scale and zero of the `n` values x[0], x[stride], ..., x[(n-1)*stride].
GroupParams computeGroupParams(const float *x, size_t n, size_t stride,
                               unsigned bits);

/// The code of one value of a group with parameters `p`.
uint8_t quantizeValue(float x, GroupParams p, unsigned bits);

/// float(code) * scale_f + zero_f, not fused.
float dequantizeValue(uint8_t code, GroupParams p);

/// computeGroupParams + quantizeValue for each value; codes[i] (unpacked,
/// one per byte) is the code of x[i*stride].
GroupParams quantizeGroup(const float *x, size_t n, size_t stride,
                          unsigned bits, uint8_t *codes);

/// A group quantizer: bits in {2,3,4,8}, group a positive multiple of 32.
struct QuantSpec {
  unsigned bits = 4;
  QuantAxis axis = QuantAxis::Token;
  unsigned group = 32;
  bool operator==(const QuantSpec &o) const {
    return bits == o.bits && axis == o.axis && group == o.group;
  }
  bool operator!=(const QuantSpec &o) const { return !(*this == o); }
};

/// "" if the spec itself is valid, else a message naming the violated rule.
std::string validateQuantSpec(const QuantSpec &spec);
/// validateQuantSpec plus the shape rule: G | D (token axis) or G | T
/// (channel axis).
std::string validateQuantShape(const QuantSpec &spec, size_t tokens,
                               size_t channels);

/// Byte size of the codes tensor: T*D*b/8.
size_t quantCodesBytes(const QuantSpec &spec, size_t tokens, size_t channels);
/// Number of groups = elements of each of the scales and zeros tensors.
size_t quantNumGroups(const QuantSpec &spec, size_t tokens, size_t channels);
/// Tensor shapes of the matrix form (see the file comment).
std::vector<int64_t> quantCodesShape(const QuantSpec &spec, int64_t tokens,
                                     int64_t channels);
std::vector<int64_t> quantParamsShape(const QuantSpec &spec, int64_t tokens,
                                      int64_t channels);

/// Quantizes x [T][D] into the matrix form. `codes` has quantCodesBytes,
/// `scales` and `zeros` quantNumGroups elements (fp16 bits).
void quantizeMatrix(const float *x, size_t tokens, size_t channels,
                    const QuantSpec &spec, uint8_t *codes, uint16_t *scales,
                    uint16_t *zeros);
/// Inverse: writes the dequantized [T][D] matrix to `out`.
void dequantizeMatrix(const uint8_t *codes, const uint16_t *scales,
                      const uint16_t *zeros, size_t tokens, size_t channels,
                      const QuantSpec &spec, float *out);

/// Owning convenience form.
struct QuantizedMatrix {
  std::vector<uint8_t> codes;
  std::vector<uint16_t> scales;
  std::vector<uint16_t> zeros;
};
QuantizedMatrix quantizeMatrix(const float *x, size_t tokens, size_t channels,
                               const QuantSpec &spec);
std::vector<float> dequantizeMatrix(const QuantizedMatrix &q, size_t tokens,
                                    size_t channels, const QuantSpec &spec);

/// fp8 per-token scale (fp16 bits) of the D values at x.
uint16_t computeFP8TokenScale(const float *x, size_t channels,
                              FP8Format format);
/// fp8 code of x under the per-token scale `scale` (fp16 bits).
uint8_t quantizeFP8Value(float x, uint16_t scale, FP8Format format);
/// fp8ToFloat(code) * scale_f.
float dequantizeFP8Value(uint8_t code, uint16_t scale, FP8Format format);

/// fp8 matrix form: codes u8 [T][D], scales f16 [T].
void quantizeFP8Matrix(const float *x, size_t tokens, size_t channels,
                       FP8Format format, uint8_t *codes, uint16_t *scales);
void dequantizeFP8Matrix(const uint8_t *codes, const uint16_t *scales,
                         size_t tokens, size_t channels, FP8Format format,
                         float *out);

} // namespace numerics
} // namespace kvc

#endif // KVC_NUMERICS_QUANTIZE_H
