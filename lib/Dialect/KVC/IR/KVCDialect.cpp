//===- KVCDialect.cpp - kvc dialect registration --------------------------===//

#include "kvc/Dialect/KVC/IR/KVCDialect.h"
#include "kvc/Dialect/KVC/IR/KVCOps.h"

#include "mlir/IR/OpImplementation.h"

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
