//===- KVCOps.h - kvc operations --------------------------------*- C++ -*-===//

#ifndef KVC_DIALECT_KVC_IR_KVCOPS_H
#define KVC_DIALECT_KVC_IR_KVCOPS_H

#include "kvc/Dialect/KVC/IR/KVCDialect.h"
#include "kvc/Dialect/KVC/IR/KVCTypes.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "kvc/Dialect/KVC/IR/KVCOps.h.inc"

#endif // KVC_DIALECT_KVC_IR_KVCOPS_H
