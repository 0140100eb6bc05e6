//===- KVCTypes.cpp - kvc types -------------------------------------------===//

#include "kvc/Dialect/KVC/IR/KVCTypes.h"
#include "kvc/Dialect/KVC/IR/KVCDialect.h"
#include "kvc/Numerics/Evict.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::kvc;

#define GET_TYPEDEF_CLASSES
#include "kvc/Dialect/KVC/IR/KVCTypes.cpp.inc"

void KVCDialect::registerTypes() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "kvc/Dialect/KVC/IR/KVCTypes.cpp.inc"
      >();
}

// !kvc.cache<BxHxCxDxT[, #kvc.encoding<...>]>
Type CacheType::parse(AsmParser &parser) {
  SmallVector<int64_t> shape;
  Type elementType;
  EncodingAttr encoding;
  if (parser.parseLess() ||
      parser.parseDimensionList(shape, /*allowDynamic=*/true,
                                /*withTrailingX=*/true) ||
      parser.parseType(elementType))
    return {};
  if (succeeded(parser.parseOptionalComma()) &&
      parser.parseAttribute(encoding))
    return {};
  if (parser.parseGreater())
    return {};
  return parser.getChecked<CacheType>(parser.getContext(), shape, elementType,
                                      encoding);
}

void CacheType::print(AsmPrinter &printer) const {
  printer << "<";
  printer.printDimensionList(getShape());
  printer << "x" << getElementType();
  if (getEncoding())
    printer << ", " << getEncoding();
  printer << ">";
}

LogicalResult CacheType::verify(function_ref<InFlightDiagnostic()> emitError,
                                ArrayRef<int64_t> shape, Type elementType,
                                EncodingAttr encoding) {
  if (shape.size() != 4)
    return emitError() << "cache shape must be batch x kv_heads x capacity x "
                          "head_dim (4 dims), got "
                       << shape.size() << " dims";
  for (int64_t dim : shape)
    if (!ShapedType::isDynamic(dim) && dim <= 0)
      return emitError() << "cache dims must be positive, got " << dim;
  if (ShapedType::isDynamic(shape[kHeadsDim]) ||
      ShapedType::isDynamic(shape[kHeadDimDim]))
    return emitError() << "cache kv_heads and head_dim must be static";
  if (!elementType.isF16() && !elementType.isBF16() && !elementType.isF32())
    return emitError() << "cache storage element type must be f16, bf16 or "
                          "f32, got "
                       << elementType;
  if (encoding &&
      failed(encoding.verifyForHeadDim(shape[kHeadDimDim], emitError)))
    return failure();
  if (EvictAttr evict = encoding ? encoding.getEvictPolicy() : EvictAttr()) {
    std::string problem = ::kvc::numerics::checkEvictPolicyHeads(
        evict.toNumerics(), size_t(shape[kHeadsDim]));
    if (!problem.empty())
      return emitError() << problem;
  }
  return success();
}
