//===- KVCAttrs.h - kvc attributes ------------------------------*- C++ -*-===//

#ifndef KVC_DIALECT_KVC_IR_KVCATTRS_H
#define KVC_DIALECT_KVC_IR_KVCATTRS_H

#include "kvc/Numerics/Encoding.h"
#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectImplementation.h"

#include "kvc/Dialect/KVC/IR/KVCEnums.h.inc"

#include "kvc/Dialect/KVC/IR/KVCAttrInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "kvc/Dialect/KVC/IR/KVCAttrs.h.inc"

#endif // KVC_DIALECT_KVC_IR_KVCATTRS_H
