//===- KVCDialect.h - kvc dialect -------------------------------*- C++ -*-===//

#ifndef KVC_DIALECT_KVC_IR_KVCDIALECT_H
#define KVC_DIALECT_KVC_IR_KVCDIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Dialect.h"

#include "kvc/Dialect/KVC/IR/KVCDialect.h.inc"

#endif // KVC_DIALECT_KVC_IR_KVCDIALECT_H
