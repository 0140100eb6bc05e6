//===- KVCDialect.cpp - kvc dialect registration --------------------------===//

#include "kvc/Dialect/KVC/IR/KVCDialect.h"
#include "kvc/Dialect/KVC/IR/KVCOps.h"

#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

using namespace mlir;
using namespace mlir::kvc;

#include "kvc/Dialect/KVC/IR/KVCDialect.cpp.inc"

namespace {
/// Prints cache encodings as `#kvc_encoding` aliases: one model's IR names
/// the same few encodings in every layer's types.
struct KVCOpAsmInterface : public OpAsmDialectInterface {
  using OpAsmDialectInterface::OpAsmDialectInterface;
  AliasResult getAlias(Attribute attr, raw_ostream &os) const override {
    if (isa<EncodingAttr>(attr)) {
      os << "kvc_encoding";
      return AliasResult::OverridableAlias;
    }
    return AliasResult::NoAlias;
  }
};
} // namespace

void KVCDialect::initialize() {
  addInterfaces<KVCOpAsmInterface>();
  registerAttributes();
  registerTypes();
  addOperations<
#define GET_OP_LIST
#include "kvc/Dialect/KVC/IR/KVCOps.cpp.inc"
      >();
}

Operation *KVCDialect::materializeConstant(OpBuilder &builder, Attribute value,
                                           Type type, Location loc) {
  // Folded quantize/dequantize results are dense tensors.
  if (auto typed = dyn_cast<TypedAttr>(value))
    if (arith::ConstantOp::isBuildableWith(typed, type))
      return arith::ConstantOp::create(builder, loc, type, typed);
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Discardable attributes
//===----------------------------------------------------------------------===//

/// `kvc.head_encodings` on something of type `type`: one #kvc.encoding per KV
/// head, all with the cache's residual window (the runtime stages residual
/// tokens per layer, not per head).
static LogicalResult verifyHeadEncodings(function_ref<InFlightDiagnostic()> emitError,
                                         Type type, Attribute value) {
  auto cache = dyn_cast<CacheType>(type);
  if (!cache)
    return emitError() << "'kvc.head_encodings' applies to a !kvc.cache, not "
                       << type;
  auto array = dyn_cast<ArrayAttr>(value);
  if (!array)
    return emitError() << "'kvc.head_encodings' must be an array of "
                          "#kvc.encoding";
  EncodingAttr typeEncoding = cache.getEncoding();
  if (!typeEncoding)
    return emitError() << "'kvc.head_encodings' needs a cache type with an "
                          "encoding";
  if (ShapedType::isDynamic(cache.getNumKVHeads()) ||
      int64_t(array.size()) != cache.getNumKVHeads())
    return emitError() << "'kvc.head_encodings' has " << array.size()
                       << " entries for a cache with "
                       << cache.getNumKVHeads() << " KV heads";
  for (auto [head, entry] : llvm::enumerate(array)) {
    auto encoding = dyn_cast<EncodingAttr>(entry);
    if (!encoding)
      return emitError() << "'kvc.head_encodings' entry " << head
                         << " is not a #kvc.encoding";
    if (encoding.getResidual() != typeEncoding.getResidual())
      return emitError() << "'kvc.head_encodings' entry " << head
                         << " has residual " << encoding.getResidual()
                         << " but the cache type has "
                         << typeEncoding.getResidual()
                         << " (the residual window is per layer)";
    if (encoding.getEvict())
      return emitError() << "'kvc.head_encodings' entry " << head
                         << " has an eviction policy, which is per layer (per-head "
                            "budgets go in its head_budgets)";
  }
  return success();
}

LogicalResult KVCDialect::verifyOperationAttribute(Operation *op,
                                                   NamedAttribute attribute) {
  if (attribute.getName() != getHeadEncodingsAttrName())
    return success();
  auto emitError = [&]() { return op->emitOpError(); };
  Type type;
  for (Type result : op->getResultTypes())
    if (isa<CacheType>(result)) {
      type = result;
      break;
    }
  if (!type)
    return op->emitOpError("has 'kvc.head_encodings' but no !kvc.cache result");
  return verifyHeadEncodings(emitError, type, attribute.getValue());
}

LogicalResult KVCDialect::verifyRegionArgAttribute(Operation *op,
                                                   unsigned regionIndex,
                                                   unsigned argIndex,
                                                   NamedAttribute attribute) {
  if (attribute.getName() != getHeadEncodingsAttrName())
    return success();
  Region &region = op->getRegion(regionIndex);
  // A declaration has no entry block; its argument types are in the
  // function type.
  Type type;
  if (!region.empty())
    type = region.getArgument(argIndex).getType();
  else if (auto function = dyn_cast<FunctionOpInterface>(op))
    type = function.getArgumentTypes()[argIndex];
  auto emitError = [&]() {
    return op->emitOpError() << "argument " << argIndex << ": ";
  };
  return verifyHeadEncodings(emitError, type, attribute.getValue());
}
