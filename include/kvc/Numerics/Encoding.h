//===- Encoding.h - Side and cache encodings --------------------*- C++ -*-===//
//
// A cache's encoding is decoupled: keys and values each get their own side
// encoding (fp16, group quantization, or fp8), plus one residual window R
// shared by both sides (KIVI flush, see compressedTokenCount).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_NUMERICS_ENCODING_H
#define KVC_NUMERICS_ENCODING_H

#include "kvc/Numerics/FP8.h"
#include "kvc/Numerics/Quantize.h"

#include <cstddef>
#include <string>

namespace kvc {
namespace numerics {

/// How one side (K or V) of a cache stores compressed tokens.
struct SideEncoding {
  enum class Kind : uint8_t {
    Plain, ///< fp16, no compression
    Quant, ///< group quantization (`quant`)
    FP8,   ///< fp8 with a per-token fp16 scale (`fp8`)
  };
  Kind kind = Kind::Plain;
  QuantSpec quant;                  ///< meaningful for Kind::Quant
  FP8Format fp8 = FP8Format::E4M3; ///< meaningful for Kind::FP8

  static SideEncoding plain() { return SideEncoding(); }
  static SideEncoding quantized(unsigned bits, QuantAxis axis,
                                unsigned group) {
    SideEncoding s;
    s.kind = Kind::Quant;
    s.quant = QuantSpec{bits, axis, group};
    return s;
  }
  static SideEncoding fp8Format(FP8Format format) {
    SideEncoding s;
    s.kind = Kind::FP8;
    s.fp8 = format;
    return s;
  }

  bool isPlain() const { return kind == Kind::Plain; }
  bool isQuant() const { return kind == Kind::Quant; }
  bool isFP8() const { return kind == Kind::FP8; }
  /// Quantized with groups along tokens: needs group-aligned token counts.
  bool isChannelAxis() const {
    return isQuant() && quant.axis == QuantAxis::Channel;
  }
  /// Tokens that must be compressed together: G for channel axis, else 1.
  unsigned tokenGranularity() const { return isChannelAxis() ? quant.group : 1; }

  /// "fp16", "quant<bits=2, axis=channel, group=32>", "fp8<e4m3>".
  std::string toString() const;

  bool operator==(const SideEncoding &o) const;
  bool operator!=(const SideEncoding &o) const { return !(*this == o); }
};

/// A whole cache: key side, value side, residual window R (tokens).
struct CacheEncoding {
  SideEncoding key;
  SideEncoding value;
  unsigned residual = 0;

  std::string toString() const;
  bool operator==(const CacheEncoding &o) const {
    return key == o.key && value == o.value && residual == o.residual;
  }
  bool operator!=(const CacheEncoding &o) const { return !(*this == o); }
};

/// "" if `side` is valid for head dimension `headDim` under residual R, else
/// a message naming the rule: bits in {2,3,4,8}; group a positive multiple of
/// 32; token axis: group divides head_dim; channel axis: R > 0 and R a
/// multiple of the group.
std::string validateSideEncoding(const SideEncoding &side, unsigned headDim,
                                 unsigned residual);
/// Both sides; messages are prefixed with "key: " / "value: ".
std::string validateCacheEncoding(const CacheEncoding &enc, unsigned headDim);

/// The residual rule (KIVI flush): of n tokens in a cache with residual
/// window R, the first floor(n/R)*R are compressed and the rest stay fp16.
/// R = 0 compresses every token immediately (not allowed with channel-axis
/// keys, whose groups need G tokens).
inline size_t compressedTokenCount(size_t numTokens, unsigned residual) {
  return residual == 0 ? numTokens : numTokens / residual * residual;
}

} // namespace numerics
} // namespace kvc

#endif // KVC_NUMERICS_ENCODING_H
