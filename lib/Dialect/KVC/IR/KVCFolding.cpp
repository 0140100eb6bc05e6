//===- KVCFolding.cpp - constant folding of kvc.quantize/dequantize -------===//
//
// Folding evaluates the ops with the numerics library, so a folded constant
// holds exactly the bytes the runtime and the kernels would produce.
//
//===----------------------------------------------------------------------===//

#include "kvc/Dialect/KVC/IR/KVCOps.h"

#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Quantize.h"
#include "mlir/IR/BuiltinAttributes.h"

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

/// Reads a constant float tensor as floats (exact for f16/bf16/f32).
static std::vector<float> readFloats(DenseElementsAttr attr) {
  std::vector<float> values;
  values.reserve(attr.getNumElements());
  for (APFloat value : attr.getValues<APFloat>()) {
    bool losesInfo = false;
    value.convert(APFloat::IEEEsingle(), APFloat::rmNearestTiesToEven,
                  &losesInfo);
    values.push_back(value.convertToFloat());
  }
  return values;
}

template <typename T>
static std::vector<T> readRaw(DenseElementsAttr attr) {
  std::vector<T> values;
  values.reserve(attr.getNumElements());
  if (attr.getElementType().isInteger(8)) {
    for (const APInt &value : attr.getValues<APInt>())
      values.push_back(T(value.getZExtValue()));
  } else {
    for (const APFloat &value : attr.getValues<APFloat>())
      values.push_back(T(value.bitcastToAPInt().getZExtValue()));
  }
  return values;
}

template <typename T>
static DenseElementsAttr makeRaw(Type type, const std::vector<T> &values) {
  ArrayRef<char> bytes(reinterpret_cast<const char *>(values.data()),
                       values.size() * sizeof(T));
  return DenseElementsAttr::getFromRawBuffer(cast<ShapedType>(type), bytes);
}

/// Builds a float tensor constant of `type`'s element type from floats,
/// rounding as the numerics library does.
static DenseElementsAttr makeFloats(Type type, const std::vector<float> &values) {
  Type elementType = cast<ShapedType>(type).getElementType();
  if (elementType.isF32())
    return makeRaw(type, values);
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    bits[i] = elementType.isF16() ? num::floatToHalf(values[i])
                                  : num::floatToBFloat16(values[i]);
  return makeRaw(type, bits);
}

/// The matrix geometry of a static `... x tokens x channels` shape.
struct MatrixGeometry {
  size_t count, tokens, channels;
};
static MatrixGeometry getGeometry(RankedTensorType type) {
  ArrayRef<int64_t> shape = type.getShape();
  size_t tokens = shape[shape.size() - 2], channels = shape.back();
  return {size_t(type.getNumElements()) / (tokens * channels), tokens,
          channels};
}

LogicalResult QuantizeOp::fold(FoldAdaptor adaptor,
                               SmallVectorImpl<OpFoldResult> &results) {
  auto input = dyn_cast_if_present<DenseElementsAttr>(adaptor.getInput());
  RankedTensorType type = getInput().getType();
  if (!input || !type.hasStaticShape())
    return failure();
  MatrixGeometry geometry = getGeometry(type);
  std::vector<float> x = readFloats(input);
  size_t matrix = geometry.tokens * geometry.channels;
  auto codesType = getCodes().getType(), scalesType = getScales().getType();
  std::vector<uint8_t> codes(codesType.getNumElements());
  std::vector<uint16_t> scales(scalesType.getNumElements());
  size_t codesPer = codes.size() / geometry.count;
  size_t scalesPer = scales.size() / geometry.count;

  if (auto fp8 = dyn_cast<FP8Attr>(getEncoding())) {
    num::FP8Format format = fp8.toNumerics().fp8;
    for (size_t m = 0; m < geometry.count; ++m)
      num::quantizeFP8Matrix(&x[m * matrix], geometry.tokens,
                             geometry.channels, format, &codes[m * codesPer],
                             &scales[m * scalesPer]);
    results.push_back(makeRaw(codesType, codes));
    results.push_back(makeRaw(scalesType, scales));
    return success();
  }
  num::QuantSpec spec = cast<QuantAttr>(getEncoding()).toNumerics().quant;
  std::vector<uint16_t> zeros(scales.size());
  for (size_t m = 0; m < geometry.count; ++m)
    num::quantizeMatrix(&x[m * matrix], geometry.tokens, geometry.channels,
                        spec, &codes[m * codesPer], &scales[m * scalesPer],
                        &zeros[m * scalesPer]);
  results.push_back(makeRaw(codesType, codes));
  results.push_back(makeRaw(scalesType, scales));
  results.push_back(makeRaw(getZeros().getType(), zeros));
  return success();
}

OpFoldResult DequantizeOp::fold(FoldAdaptor adaptor) {
  auto codesAttr = dyn_cast_if_present<DenseElementsAttr>(adaptor.getCodes());
  auto scalesAttr = dyn_cast_if_present<DenseElementsAttr>(adaptor.getScales());
  auto zerosAttr = dyn_cast_if_present<DenseElementsAttr>(adaptor.getZeros());
  RankedTensorType type = getResult().getType();
  if (!codesAttr || !scalesAttr || (getZeros() && !zerosAttr) ||
      !type.hasStaticShape())
    return {};
  MatrixGeometry geometry = getGeometry(type);
  std::vector<uint8_t> codes = readRaw<uint8_t>(codesAttr);
  std::vector<uint16_t> scales = readRaw<uint16_t>(scalesAttr);
  size_t codesPer = codes.size() / geometry.count;
  size_t scalesPer = scales.size() / geometry.count;
  size_t matrix = geometry.tokens * geometry.channels;
  std::vector<float> out(type.getNumElements());

  if (auto fp8 = dyn_cast<FP8Attr>(getEncoding())) {
    num::FP8Format format = fp8.toNumerics().fp8;
    for (size_t m = 0; m < geometry.count; ++m)
      num::dequantizeFP8Matrix(&codes[m * codesPer], &scales[m * scalesPer],
                               geometry.tokens, geometry.channels, format,
                               &out[m * matrix]);
    return makeFloats(type, out);
  }
  num::QuantSpec spec = cast<QuantAttr>(getEncoding()).toNumerics().quant;
  std::vector<uint16_t> zeros = readRaw<uint16_t>(zerosAttr);
  for (size_t m = 0; m < geometry.count; ++m)
    num::dequantizeMatrix(&codes[m * codesPer], &scales[m * scalesPer],
                          &zeros[m * scalesPer], geometry.tokens,
                          geometry.channels, spec, &out[m * matrix]);
  return makeFloats(type, out);
}
