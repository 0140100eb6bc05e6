//===- Lowering.h - shared pieces of the kvc CPU lowering -------*- C++ -*-===//

#ifndef KVC_LIB_CONVERSION_KVCTOLOOPS_LOWERING_H
#define KVC_LIB_CONVERSION_KVCTOLOOPS_LOWERING_H

#include "kvc/Dialect/KVC/IR/KVCOps.h"
#include "kvc/Numerics/Encoding.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir {
namespace kvc {

/// What the patterns of the CPU lowering share.
struct LoweringContext {
  unsigned pageTokens;
  /// Declares (once) and returns the runtime function `name`.
  func::FuncOp getOrDeclare(OpBuilder &b, StringRef name, TypeRange inputs,
                            TypeRange results, bool cInterface) const;
  /// Calls runtime function `name` (declared on first use, without the C
  /// interface) and returns its result, if any.
  Value call(OpBuilder &b, Location loc, StringRef name, TypeRange results,
             ValueRange args) const;
  /// The memref<256xf32> global decoding fp8 codes of `side`'s format
  /// (created by the pass before the conversion starts), or null when the
  /// side is not fp8.
  Value getFP8Table(OpBuilder &b, Location loc,
                    const ::kvc::numerics::SideEncoding &side) const;
  mutable ModuleOp module;
};

/// Adds the pattern lowering kvc.attend to loops over packed pages.
void populateAttendToLoopsPattern(RewritePatternSet &patterns,
                                  const TypeConverter &converter,
                                  const LoweringContext &context);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOLOOPS_LOWERING_H
