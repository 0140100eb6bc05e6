//===- Patterns.h - StableHLO to linalg conversion patterns -----*- C++ -*-===//
//
// StableHLO ops are unregistered here, so every pattern matches its op by
// name. Besides rewriting, a pattern checks its op before anything is
// converted (attributes, element types): the pass reports every problem as a
// located error and converts nothing when one is found.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_STABLEHLOTOLINALG_PATTERNS_H
#define KVC_LIB_CONVERSION_STABLEHLOTOLINALG_PATTERNS_H

#include "AttrParser.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir {
namespace kvc {
namespace shlo {

/// The conversion of one StableHLO op, found by its name.
class StableHLOPattern : public ConversionPattern {
public:
  StableHLOPattern(StringRef opName, MLIRContext *context,
                   ArrayRef<StringRef> attributes = {})
      : ConversionPattern(opName, /*benefit=*/1, context),
        attributes(attributes.begin(), attributes.end()) {}

  /// The op's inherent attributes this pattern understands; any other one is
  /// an error (metadata such as `mhlo.*` is ignored).
  ArrayRef<StringRef> getKnownAttributes() const { return attributes; }

  /// Checks what the generic checks (static tensor types of supported
  /// element types) do not: attributes, operand counts, element types.
  /// Emits a located error on failure.
  virtual LogicalResult check(Operation *op) const { return success(); }

private:
  SmallVector<StringRef> attributes;
};

void populateElementwisePatterns(RewritePatternSet &patterns);
void populateShapePatterns(RewritePatternSet &patterns);
void populateContractionPatterns(RewritePatternSet &patterns);
void populateGatherScatterPatterns(RewritePatternSet &patterns);

/// Splits the arguments of `func` that stack per-layer caches
/// ([layers, ...], updated by insert_slice at a static layer offset, read by
/// extract_slice at one, returned at the end) into one argument per layer,
/// and the returned stack into one result per layer.
void unstackLayerArguments(func::FuncOp func);

//===----------------------------------------------------------------------===//
// Helpers shared by the patterns
//===----------------------------------------------------------------------===//

/// The ranked tensor type of `value`.
inline RankedTensorType tensorType(Value value) {
  return cast<RankedTensorType>(value.getType());
}

/// A tensor.empty of `type`.
Value createEmpty(OpBuilder &builder, Location loc, RankedTensorType type);

/// A tensor of `type` filled with the scalar `value`.
Value createFilled(OpBuilder &builder, Location loc, RankedTensorType type,
                   Value value);

/// A linalg.generic over the shape of `resultType` with all-parallel loops
/// whose inputs are read at the same index (rank-0 inputs: broadcast);
/// `body` computes the result element from the input elements.
Value buildElementwise(
    OpBuilder &builder, Location loc, RankedTensorType resultType,
    ValueRange inputs,
    function_ref<Value(OpBuilder &, Location, ValueRange)> body);

/// The element of a 0-d integer tensor as a signed index.
Value extractIndex(OpBuilder &builder, Location loc, Value scalarTensor);

/// `index` clamped to [0, upper] (upper >= 0).
Value clampIndex(OpBuilder &builder, Location loc, Value index,
                 int64_t upper);

/// Converts a scalar between element types the StableHLO way (integers are
/// signed, i1 unsigned; float to i1 and int to i1 compare with zero).
Value convertScalar(OpBuilder &builder, Location loc, Value value, Type to);

/// The scalar value of a splat constant tensor, as an arith.constant, or
/// the element of a 0-d tensor (tensor.extract).
Value scalarOf(OpBuilder &builder, Location loc, Value tensor);

/// The combiner of a reduce/scatter body: the one op applied to the two
/// block arguments before `stablehlo.return` (null when the body just
/// returns its second argument: an overwrite). Fails (with an error at
/// `op` when `emitErrors`) on any other body.
FailureOr<Operation *> readCombiner(Operation *op, Region &body,
                                    bool allowOverwrite, bool emitErrors);

/// The scalar combination `combiner(lhs, rhs)` for a combiner op name (null
/// combiner: `rhs`).
Value buildCombiner(OpBuilder &builder, Location loc, Operation *combiner,
                    Value lhs, Value rhs);

/// Whether the combiner op name is supported for element type `type`.
bool isSupportedCombiner(StringRef name, Type type);

} // namespace shlo
} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_STABLEHLOTOLINALG_PATTERNS_H
