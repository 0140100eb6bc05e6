//===- Passes.h - kvc transformation passes ---------------------*- C++ -*-===//

#ifndef KVC_DIALECT_KVC_TRANSFORMS_PASSES_H
#define KVC_DIALECT_KVC_TRANSFORMS_PASSES_H

#include "kvc/Dialect/KVC/IR/KVCOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
namespace kvc {

#define GEN_PASS_DECL
#include "kvc/Dialect/KVC/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "kvc/Dialect/KVC/Transforms/Passes.h.inc"

} // namespace kvc
} // namespace mlir

#endif // KVC_DIALECT_KVC_TRANSFORMS_PASSES_H
