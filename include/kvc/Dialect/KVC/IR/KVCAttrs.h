//===- KVCAttrs.h - kvc attributes ------------------------------*- C++ -*-===//

#ifndef KVC_DIALECT_KVC_IR_KVCATTRS_H
#define KVC_DIALECT_KVC_IR_KVCATTRS_H

#include "kvc/Numerics/Encoding.h"
#include "kvc/Numerics/Evict.h"
#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectImplementation.h"

#include "kvc/Dialect/KVC/IR/KVCEnums.h.inc"

#include "kvc/Dialect/KVC/IR/KVCAttrInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "kvc/Dialect/KVC/IR/KVCAttrs.h.inc"

namespace mlir {
namespace kvc {
/// The numerics library's name for a quantization axis.
inline ::kvc::numerics::QuantAxis toNumerics(QuantAxis axis) {
  return axis == QuantAxis::Channel ? ::kvc::numerics::QuantAxis::Channel
                                    : ::kvc::numerics::QuantAxis::Token;
}
} // namespace kvc
} // namespace mlir

#endif // KVC_DIALECT_KVC_IR_KVCATTRS_H
