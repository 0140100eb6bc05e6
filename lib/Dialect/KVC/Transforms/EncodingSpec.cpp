//===- EncodingSpec.cpp - textual cache encoding specs --------------------===//

#include "kvc/Dialect/KVC/Transforms/EncodingSpec.h"

#include "kvc/Numerics/Quantize.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::kvc;

static llvm::Error specError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

EncodingSpec EncodingSpec::getDefault(MLIRContext *context) {
  EncodingSpec spec;
  spec.key = QuantAttr::get(context, 2, QuantAxis::Channel, 32);
  spec.value = QuantAttr::get(context, 2, QuantAxis::Token, 32);
  spec.residual = 128;
  return spec;
}

EncodingSpec EncodingSpec::overriddenBy(const EncodingSpec &other) const {
  EncodingSpec result = *this;
  if (other.key)
    result.key = other.key;
  if (other.value)
    result.value = other.value;
  if (other.residual)
    result.residual = other.residual;
  return result;
}

FailureOr<EncodingAttr>
EncodingSpec::toAttr(MLIRContext *context,
                     function_ref<InFlightDiagnostic()> emitError) const {
  if (!key || !value || !residual) {
    emitError() << "incomplete encoding spec: needs key, value and residual";
    return failure();
  }
  EncodingAttr attr =
      EncodingAttr::getChecked(emitError, context, key, value, *residual,
                               Attribute(), Attribute(), Attribute());
  if (!attr)
    return failure();
  return attr;
}

llvm::Expected<SideEncodingAttrInterface>
mlir::kvc::parseSideSpec(StringRef text, MLIRContext *context) {
  if (text == "fp16")
    return cast<SideEncodingAttrInterface>(PlainAttr::get(context));
  SmallVector<StringRef> fields;
  text.split(fields, ':');
  if (fields.size() == 2 && fields[0] == "fp8") {
    if (fields[1] == "e4m3")
      return cast<SideEncodingAttrInterface>(
          FP8Attr::get(context, FP8Format::E4M3));
    if (fields[1] == "e5m2")
      return cast<SideEncodingAttrInterface>(
          FP8Attr::get(context, FP8Format::E5M2));
    return specError("unknown fp8 format '" + fields[1] +
                     "' (expected e4m3 or e5m2)");
  }
  unsigned bits = 0, group = 0;
  if (fields.size() != 3 || !fields[0].consume_front("q") ||
      fields[0].getAsInteger(10, bits) || !fields[2].consume_front("g") ||
      fields[2].getAsInteger(10, group))
    return specError("bad encoding '" + text +
                     "' (expected fp16, fp8:<e4m3|e5m2> or "
                     "q<bits>:<channel|token>:g<group>)");
  std::optional<QuantAxis> axis = symbolizeQuantAxis(fields[1]);
  if (!axis)
    return specError("unknown quantization axis '" + fields[1] + "' in '" +
                     text + "' (expected channel or token)");
  std::string problem = ::kvc::numerics::validateQuantSpec(
      {bits, toNumerics(*axis), group});
  if (!problem.empty())
    return specError("invalid encoding '" + text + "': " + problem);
  auto attr = QuantAttr::get(context, bits, *axis, group);
  return cast<SideEncodingAttrInterface>(attr);
}

llvm::Expected<EncodingSpec> mlir::kvc::parseEncodingSpec(StringRef text,
                                                          MLIRContext *context) {
  EncodingSpec spec;
  SmallVector<StringRef> items;
  text.split(items, ',', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  for (StringRef item : items) {
    item = item.trim();
    auto [name, valueText] = item.split('=');
    if (valueText.empty() && !item.contains('='))
      return specError("bad spec item '" + item +
                       "' (expected key=..., value=... or residual=N)");
    if (name == "residual") {
      unsigned residual;
      if (valueText.getAsInteger(10, residual))
        return specError("bad residual '" + valueText +
                         "' (expected a token count)");
      spec.residual = residual;
      continue;
    }
    if (name != "key" && name != "value")
      return specError("unknown spec item '" + name +
                       "' (expected key, value or residual)");
    llvm::Expected<SideEncodingAttrInterface> side =
        parseSideSpec(valueText, context);
    if (!side)
      return specError(llvm::formatv("{0}: {1}", name,
                                     llvm::toString(side.takeError())));
    (name == "key" ? spec.key : spec.value) = *side;
  }
  return spec;
}

llvm::Expected<SmallVector<LayerOverride>>
mlir::kvc::parseLayerOverrides(StringRef text, MLIRContext *context) {
  SmallVector<LayerOverride> overrides;
  SmallVector<StringRef> entries;
  text.split(entries, ';', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  for (StringRef entry : entries) {
    entry = entry.trim();
    auto [range, specText] = entry.split(':');
    auto [firstText, lastText] = range.split('-');
    LayerOverride layerOverride;
    if (firstText.getAsInteger(10, layerOverride.first) ||
        (lastText.empty() ? (layerOverride.last = layerOverride.first, false)
                          : lastText.getAsInteger(10, layerOverride.last)) ||
        layerOverride.last < layerOverride.first || specText.empty())
      return specError("bad layer override '" + entry +
                       "' (expected <first>[-<last>]:<spec>)");
    llvm::Expected<EncodingSpec> spec = parseEncodingSpec(specText, context);
    if (!spec)
      return specError("layers " + range + ": " +
                       llvm::toString(spec.takeError()));
    layerOverride.spec = *spec;
    overrides.push_back(layerOverride);
  }
  return overrides;
}

std::string mlir::kvc::formatSideSpec(SideEncodingAttrInterface side) {
  if (auto quant = dyn_cast<QuantAttr>(side))
    return llvm::formatv("q{0}:{1}:g{2}", quant.getBits(),
                         stringifyQuantAxis(quant.getAxis()), quant.getGroup());
  if (auto fp8 = dyn_cast<FP8Attr>(side))
    return "fp8:" + stringifyFP8Format(fp8.getFormat()).str();
  return "fp16";
}
