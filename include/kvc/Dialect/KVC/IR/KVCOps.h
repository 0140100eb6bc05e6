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

namespace mlir {
namespace kvc {

/// The encoding of every KV head of `cache`: the `kvc.head_encodings` of
/// the function argument or operation that introduced it (found through the
/// appends, forks and evictions that extend it), else the type's encoding
/// for every head. Empty when the cache is not compressed (no encoding).
SmallVector<EncodingAttr> getKVHeadEncodings(Value cache);

} // namespace kvc
} // namespace mlir

#endif // KVC_DIALECT_KVC_IR_KVCOPS_H
