//===- Encoding.cpp - Side and cache encodings ----------------------------===//

#include "kvc/Numerics/Encoding.h"

namespace kvc {
namespace numerics {

std::string SideEncoding::toString() const {
  switch (kind) {
  case Kind::Plain:
    return "fp16";
  case Kind::FP8:
    return std::string("fp8<") + fp8FormatName(fp8) + ">";
  case Kind::Quant:
    return "quant<bits=" + std::to_string(quant.bits) +
           ", axis=" + quantAxisName(quant.axis) +
           ", group=" + std::to_string(quant.group) + ">";
  }
  return "?";
}

bool SideEncoding::operator==(const SideEncoding &o) const {
  if (kind != o.kind)
    return false;
  if (kind == Kind::Quant)
    return quant == o.quant;
  if (kind == Kind::FP8)
    return fp8 == o.fp8;
  return true;
}

std::string CacheEncoding::toString() const {
  return "key=" + key.toString() + ", value=" + value.toString() +
         ", residual=" + std::to_string(residual);
}

std::string validateSideEncoding(const SideEncoding &side, unsigned headDim,
                                 unsigned residual) {
  if (headDim == 0)
    return "head_dim must be positive";
  if (!side.isQuant())
    return "";
  const QuantSpec &q = side.quant;
  std::string err = validateQuantSpec(q);
  if (!err.empty())
    return err;
  if (q.axis == QuantAxis::Token && headDim % q.group != 0)
    return "token-axis group (" + std::to_string(q.group) +
           ") must divide head_dim (" + std::to_string(headDim) + ")";
  if (q.axis == QuantAxis::Channel) {
    if (residual == 0)
      return "channel-axis quantization needs a residual window R > 0 (its "
             "groups span G tokens)";
    if (residual % q.group != 0)
      return "residual (" + std::to_string(residual) +
             ") must be a multiple of the channel-axis group (" +
             std::to_string(q.group) + ")";
  }
  return "";
}

std::string validateCacheEncoding(const CacheEncoding &enc, unsigned headDim) {
  std::string err = validateSideEncoding(enc.key, headDim, enc.residual);
  if (!err.empty())
    return "key: " + err;
  err = validateSideEncoding(enc.value, headDim, enc.residual);
  if (!err.empty())
    return "value: " + err;
  return "";
}

} // namespace numerics
} // namespace kvc
