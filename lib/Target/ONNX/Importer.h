//===- Importer.h - state shared by the ONNX op importers -------*- C++ -*-===//
//
// The importer walks the ONNX graph once, in node order, and keeps for every
// ONNX value what it knows about it: its tensor type, the MLIR value (made
// on demand), and for small tensors their contents. Shape arithmetic
// (Shape, Gather, Concat, ...) is evaluated on those contents, element by
// element, so that with static input shapes it folds away completely and
// with dynamic ones it becomes a few index computations.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_TARGET_ONNX_IMPORTER_H
#define KVC_LIB_TARGET_ONNX_IMPORTER_H

#include "kvc/Target/ONNX/ImportONNX.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/OpDefinition.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

#include <onnx/onnx_pb.h>

#include <functional>
#include <optional>

namespace kvc {
namespace onnx_import {

using namespace mlir;

/// What the importer knows about one ONNX value.
struct TensorValue {
  /// Null for a !kvc.cache (present_key of an attention node).
  RankedTensorType type;
  /// The tensor in the IR; null until something needs it.
  Value tensor;
  /// The full contents, for constants small enough to keep.
  DenseElementsAttr constant;
  /// The contents of a small integer or boolean tensor of rank 0 or 1, one
  /// entry per element: an IntegerAttr, or an `index` (integers) or `i1`
  /// (booleans) value computed in the IR.
  std::optional<SmallVector<OpFoldResult>> elems;
};

/// An operand of an elementwise computation: a tensor, or a splat constant
/// that is emitted inside the loop body.
struct ElementwiseOperand {
  Value tensor;
  /// A splat constant of shape `splatType` (which takes part in
  /// broadcasting).
  TypedAttr splat;
  RankedTensorType splatType;
};

/// Builds the body of an elementwise linalg.generic: gets the operands'
/// elements, returns the result element.
using ScalarBuilder =
    std::function<Value(OpBuilder &, Location, ValueRange)>;

class Importer;
using OpImporter = std::function<LogicalResult(Importer &)>;
using OpTable = llvm::StringMap<OpImporter>;

void addElementwiseOps(OpTable &table);
void addContractionOps(OpTable &table);
void addShapeOps(OpTable &table);
void addConstantOps(OpTable &table);
void addIndexingOps(OpTable &table);
void addAttentionOps(OpTable &table);

/// Small rank-0/1 integer results are kept as elements, up to this length.
constexpr int64_t kMaxKnownElements = 4096;

class Importer;
/// A value of known elements (see TensorValue::elems).
TensorValue elementsValue(ArrayRef<OpFoldResult> elems, Type element,
                          bool scalar);
/// The elements of input `i`, which must be known at import time.
FailureOr<SmallVector<OpFoldResult>> requiredElements(Importer &im, unsigned i,
                                                      StringRef what);
/// The integer constants of input `i`, which must be known.
FailureOr<SmallVector<int64_t>> requiredInts(Importer &im, unsigned i,
                                             StringRef what);
/// Whether a static shape's element count fits in int64 (types beyond it
/// break every size computation downstream).
LogicalResult checkElementCount(Importer &im, ArrayRef<OpFoldResult> dims);

/// a * b in two's complement: sizes computed from a corrupt model must not
/// be undefined behaviour (the shape checks reject them afterwards).
inline int64_t mulWrap(int64_t a, int64_t b) {
  return int64_t(uint64_t(a) * uint64_t(b));
}

/// Converts an ONNX TensorProto element type to MLIR; null if unsupported.
Type convertElementType(MLIRContext *context, int32_t onnxType);

/// Decodes a TensorProto (raw_data, typed fields or external data next to
/// the model file) into bytes in MLIR's dense layout. Errors name the tensor.
FailureOr<DenseElementsAttr>
decodeTensor(MLIRContext *context, const onnx::TensorProto &tensor,
             StringRef modelDir, function_ref<InFlightDiagnostic()> emitError);

class Importer {
public:
  Importer(MLIRContext *context, const onnx::ModelProto &model,
           StringRef fileName, const ONNXImportOptions &options);

  OwningOpRef<ModuleOp> run();

  //===--- Used by the op importers ---------------------------------------===//

  MLIRContext *context;
  OpBuilder builder;
  /// Location of the node being imported.
  Location loc;
  const onnx::NodeProto *node = nullptr;
  /// Opset version of the node's domain.
  int64_t opset = 0;

  /// An error at the current node: "node 'name' (OpType): ...".
  InFlightDiagnostic nodeError();

  unsigned numInputs() const;
  /// Whether optional input `i` is present (named, not "").
  bool hasInput(unsigned i) const;
  /// Input `i`; an error when it is absent.
  FailureOr<TensorValue *> input(unsigned i);
  /// The IR value of input `i`.
  FailureOr<Value> inputTensor(unsigned i);
  unsigned numOutputs() const;
  /// Whether output `i` is used (named, not "").
  bool hasOutput(unsigned i) const;
  void setOutput(unsigned i, Value tensor);
  void setOutput(unsigned i, TensorValue value);

  /// The IR value for `value`, materializing constants and elements.
  Value materialize(TensorValue &value);

  const onnx::AttributeProto *attribute(StringRef name) const;
  FailureOr<int64_t> intAttr(StringRef name, std::optional<int64_t> dflt);
  FailureOr<double> floatAttr(StringRef name, std::optional<double> dflt);
  FailureOr<SmallVector<int64_t>>
  intsAttr(StringRef name, std::optional<SmallVector<int64_t>> dflt);
  FailureOr<std::string> stringAttr(StringRef name,
                                    std::optional<std::string> dflt);
  /// Errors for attributes the importer does not know for this op.
  LogicalResult checkAttributes(ArrayRef<StringRef> known);

  /// The elements of a small integer tensor; failure if unknown.
  std::optional<SmallVector<OpFoldResult>> elementsOf(TensorValue &value);
  /// Integer constants of a small tensor, if all are known.
  std::optional<SmallVector<int64_t>> constantInts(TensorValue &value);
  /// A splat constant's value, if `value` is one.
  TypedAttr splatOf(TensorValue &value);
  /// `value` as an elementwise operand: small splat constants stay scalars.
  ElementwiseOperand operandOf(TensorValue &value);

  /// Normalizes a possibly negative axis; errors when out of range.
  FailureOr<int64_t> normalizeAxis(int64_t axis, int64_t rank);

  //===--- IR helpers ---------------------------------------------------===//

  Value indexConstant(int64_t v);
  Value toIndex(OpFoldResult ofr);
  /// Size of dimension `dim` of `tensor`: static or a tensor.dim.
  OpFoldResult dimOf(Value tensor, int64_t dim);
  SmallVector<OpFoldResult> dimsOf(Value tensor);
  /// tensor.empty of `shape` (dynamic entries are values).
  Value emptyTensor(ArrayRef<OpFoldResult> shape, Type elementType);
  Value filledTensor(ArrayRef<OpFoldResult> shape, TypedAttr value);
  /// Numpy-broadcasting elementwise op as one linalg.generic.
  FailureOr<Value> elementwise(ArrayRef<ElementwiseOperand> operands,
                               Type resultElement, const ScalarBuilder &body);
  /// Broadcasts `tensor` to `shape` (numpy rules).
  FailureOr<Value> broadcastTo(Value tensor, ArrayRef<OpFoldResult> shape);
  /// Reshapes `tensor` to `shape` by collapse/expand_shape when the shapes
  /// allow it, else by tensor.reshape.
  Value reshape(Value tensor, ArrayRef<OpFoldResult> shape);
  /// Converts a scalar between element types with ONNX Cast semantics.
  Value castScalar(OpBuilder &b, Location l, Value v, Type to);

  //===--- Signature changes (attention nodes mapped to kvc ops) ----------===//

  /// The function argument of graph input `name`, if it is one.
  BlockArgument graphInputArgument(StringRef name);
  /// Adds an argument right before `before`, with `attrs`.
  BlockArgument insertArgument(BlockArgument before, Type type,
                               DictionaryAttr attrs);
  /// Graph outputs that the function does not return (present values folded
  /// into a returned cache).
  llvm::StringSet<> droppedOutputs;
  /// Graph inputs whose role a cache argument took over; dropped when
  /// unused.
  llvm::DenseSet<Value> replacedArguments;
  /// Attention layers mapped to kvc ops so far.
  int64_t numCacheLayers = 0;

private:
  LogicalResult importGraph();
  LogicalResult declareInputs(SmallVectorImpl<Type> &argTypes,
                              SmallVectorImpl<DictionaryAttr> &argAttrs);
  LogicalResult importNode(const onnx::NodeProto &n, unsigned index);
  FailureOr<RankedTensorType> inputType(const onnx::ValueInfoProto &info);

  const onnx::ModelProto &model;
  std::string fileName;
  std::string modelDir;
  const ONNXImportOptions &options;
  OpTable table;
  llvm::StringMap<TensorValue> values;
  llvm::StringMap<int64_t> opsets;
  func::FuncOp function;
  /// Initializers that became arguments, in argument order.
  SmallVector<std::pair<std::string, DenseElementsAttr>> weights;
};

} // namespace onnx_import
} // namespace kvc

#endif // KVC_LIB_TARGET_ONNX_IMPORTER_H
