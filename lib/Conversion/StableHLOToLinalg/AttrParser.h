//===- AttrParser.h - StableHLO attributes from their opaque text -*- C++ -*-===//
//
// Without a registered StableHLO dialect, `#stablehlo.dot<...>` and
// `#stablehlo<comparison_direction LT>` parse as OpaqueAttr holding the text
// after the dialect name. These readers parse that text with a small
// tokenizer and report malformed text as an error at the op.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_STABLEHLOTOLINALG_ATTRPARSER_H
#define KVC_LIB_CONVERSION_STABLEHLOTOLINALG_ATTRPARSER_H

#include "mlir/IR/Operation.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/SmallVector.h"

namespace mlir {
namespace kvc {
namespace shlo {

using DimList = SmallVector<int64_t, 4>;

/// `#stablehlo.dot<...>`: the dimension numbers of dot_general.
struct DotDimensions {
  DimList lhsBatching, rhsBatching, lhsContracting, rhsContracting;
};

/// `#stablehlo.gather<...>`.
struct GatherDimensions {
  DimList offsetDims, collapsedSliceDims, operandBatchingDims,
      startIndicesBatchingDims, startIndexMap;
  int64_t indexVectorDim = 0;
};

/// `#stablehlo.scatter<...>`.
struct ScatterDimensions {
  DimList updateWindowDims, insertedWindowDims, inputBatchingDims,
      scatterIndicesBatchingDims, scatterDimsToOperandDims;
  int64_t indexVectorDim = 0;
};

/// The raw text of a parsed struct attribute: field name -> integer list
/// (a scalar field holds one element).
struct StructField {
  StringRef name;
  bool isList;
  bool required;
};

/// Parses `mnemonic<field = value, ...>` where every value is an integer or
/// a list of integers; fills `values` in the order of `fields` (missing
/// optional fields stay empty). On malformed text returns failure with a
/// message in `error`.
LogicalResult parseStructText(StringRef text, StringRef mnemonic,
                              ArrayRef<StructField> fields,
                              SmallVectorImpl<DimList> &values,
                              std::string &error);

/// Parses `keyword VALUE` (e.g. `comparison_direction LT`) and returns
/// VALUE when it is one of `allowed`.
LogicalResult parseEnumText(StringRef text, StringRef keyword,
                            ArrayRef<StringRef> allowed, StringRef &value,
                            std::string &error);

/// Readers of the attributes of `op` (inherent or discardable). Each emits a
/// located error naming the attribute when it is missing or malformed, unless
/// `emitErrors` is false.
FailureOr<DotDimensions> readDotDimensions(Operation *op,
                                           bool emitErrors = true);
FailureOr<GatherDimensions> readGatherDimensions(Operation *op,
                                                 bool emitErrors = true);
FailureOr<ScatterDimensions> readScatterDimensions(Operation *op,
                                                   bool emitErrors = true);
/// `#stablehlo<mnemonic VALUE>` in attribute `name`; std::nullopt-like
/// empty StringRef when absent and not `required`.
FailureOr<StringRef> readEnum(Operation *op, StringRef name,
                              StringRef mnemonic, ArrayRef<StringRef> allowed,
                              bool required, bool emitErrors = true);
/// `precision_config`: an array of `#stablehlo<precision ...>`. Any known
/// precision is accepted (kvc computes in the operand type or wider).
LogicalResult checkPrecisionConfig(Operation *op, bool emitErrors = true);

/// An integer list attribute (array<i64: ...> or dense<...> : tensor<Nxi64>).
FailureOr<DimList> readDims(Operation *op, StringRef name, bool required,
                            bool emitErrors = true);
/// An integer attribute (`dimension = 1 : i64`).
FailureOr<int64_t> readInteger(Operation *op, StringRef name,
                               bool emitErrors = true);

/// The attribute `name` of `op`, inherent (properties) or discardable.
Attribute getOpAttr(Operation *op, StringRef name);

} // namespace shlo
} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_STABLEHLOTOLINALG_ATTRPARSER_H
