//===- Importer.cpp - ONNX graph -> func.func -----------------------------===//
//
// Graph inputs become function arguments, initializers become constants
// (small ones, which shape arithmetic needs) or arguments (weights, written
// to a safetensors file), nodes are imported in order by the op tables of
// the other files, and graph outputs become results. Every argument and
// result carries `kvc.name`, the ONNX name, which `kvc-run --invoke` uses to
// feed and name tensors.
//
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "kvc/Support/SafeTensors.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/Path.h"

using namespace mlir;

namespace kvc {
namespace onnx_import {

static constexpr StringLiteral kNameAttr = "kvc.name";

Importer::Importer(MLIRContext *context, const onnx::ModelProto &model,
                   StringRef fileName, const ONNXImportOptions &options)
    : context(context), builder(context),
      loc(FileLineColLoc::get(context, fileName, 0, 0)), model(model),
      fileName(fileName.str()), options(options) {
  modelDir = llvm::sys::path::parent_path(fileName).str();
  addElementwiseOps(table);
  addContractionOps(table);
  addShapeOps(table);
  addConstantOps(table);
  addIndexingOps(table);
  addAttentionOps(table);
}

//===----------------------------------------------------------------------===//
// Node access
//===----------------------------------------------------------------------===//

InFlightDiagnostic Importer::nodeError() {
  InFlightDiagnostic diag = emitError(loc);
  if (node)
    diag << "node '" << node->name() << "' (" << node->op_type() << "): ";
  return diag;
}

unsigned Importer::numInputs() const { return node->input_size(); }

bool Importer::hasInput(unsigned i) const {
  return int(i) < node->input_size() && !node->input(i).empty();
}

FailureOr<TensorValue *> Importer::input(unsigned i) {
  if (!hasInput(i))
    return nodeError() << "missing input " << i, failure();
  auto it = values.find(node->input(i));
  if (it == values.end())
    return nodeError() << "input '" << node->input(i)
                       << "' is not defined before this node",
           failure();
  // A present_key mapped to a !kvc.cache can only leave the graph.
  if (!it->second.type)
    return nodeError() << "input '" << node->input(i)
                       << "' is a KV cache made by an attention node; it "
                          "can only be a graph output",
           failure();
  return &it->second;
}

FailureOr<Value> Importer::inputTensor(unsigned i) {
  FailureOr<TensorValue *> value = input(i);
  if (failed(value))
    return failure();
  return materialize(**value);
}

unsigned Importer::numOutputs() const { return node->output_size(); }

bool Importer::hasOutput(unsigned i) const {
  return int(i) < node->output_size() && !node->output(i).empty();
}

void Importer::setOutput(unsigned i, Value tensor) {
  TensorValue value;
  value.type = cast<RankedTensorType>(tensor.getType());
  value.tensor = tensor;
  setOutput(i, std::move(value));
}

void Importer::setOutput(unsigned i, TensorValue value) {
  if (!hasOutput(i))
    return;
  values[node->output(i)] = std::move(value);
}

Value Importer::materialize(TensorValue &value) {
  if (value.tensor)
    return value.tensor;
  OpBuilder::InsertionGuard guard(builder);
  if (value.constant) {
    value.tensor = arith::ConstantOp::create(builder, loc, value.constant);
    return value.tensor;
  }
  assert(value.elems && "a value has a tensor, a constant or elements");
  Type element = value.type.getElementType();
  SmallVector<Value> scalars;
  for (OpFoldResult ofr : *value.elems) {
    if (auto attr = dyn_cast<Attribute>(ofr)) {
      auto integer = cast<IntegerAttr>(attr);
      scalars.push_back(arith::ConstantOp::create(
          builder, loc, IntegerAttr::get(element, integer.getInt())));
      continue;
    }
    Value v = cast<Value>(ofr);
    if (v.getType().isIndex())
      v = arith::IndexCastOp::create(builder, loc, element, v);
    scalars.push_back(v);
  }
  value.tensor =
      tensor::FromElementsOp::create(builder, loc, value.type, scalars);
  return value.tensor;
}

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

const onnx::AttributeProto *Importer::attribute(StringRef name) const {
  for (const onnx::AttributeProto &attr : node->attribute())
    if (attr.name() == name)
      return &attr;
  return nullptr;
}

FailureOr<int64_t> Importer::intAttr(StringRef name,
                                     std::optional<int64_t> dflt) {
  const onnx::AttributeProto *attr = attribute(name);
  if (!attr) {
    if (dflt)
      return *dflt;
    return nodeError() << "missing attribute '" << name << "'", failure();
  }
  if (attr->type() != onnx::AttributeProto::INT)
    return nodeError() << "attribute '" << name << "' must be an int",
           failure();
  return attr->i();
}

FailureOr<double> Importer::floatAttr(StringRef name,
                                      std::optional<double> dflt) {
  const onnx::AttributeProto *attr = attribute(name);
  if (!attr) {
    if (dflt)
      return *dflt;
    return nodeError() << "missing attribute '" << name << "'", failure();
  }
  if (attr->type() != onnx::AttributeProto::FLOAT)
    return nodeError() << "attribute '" << name << "' must be a float",
           failure();
  return double(attr->f());
}

FailureOr<SmallVector<int64_t>>
Importer::intsAttr(StringRef name, std::optional<SmallVector<int64_t>> dflt) {
  const onnx::AttributeProto *attr = attribute(name);
  if (!attr) {
    if (dflt)
      return *dflt;
    return nodeError() << "missing attribute '" << name << "'", failure();
  }
  if (attr->type() != onnx::AttributeProto::INTS)
    return nodeError() << "attribute '" << name << "' must be a list of ints",
           failure();
  return SmallVector<int64_t>(attr->ints().begin(), attr->ints().end());
}

FailureOr<std::string>
Importer::stringAttr(StringRef name, std::optional<std::string> dflt) {
  const onnx::AttributeProto *attr = attribute(name);
  if (!attr) {
    if (dflt)
      return *dflt;
    return nodeError() << "missing attribute '" << name << "'", failure();
  }
  if (attr->type() != onnx::AttributeProto::STRING)
    return nodeError() << "attribute '" << name << "' must be a string",
           failure();
  return attr->s();
}

LogicalResult Importer::checkAttributes(ArrayRef<StringRef> known) {
  for (const onnx::AttributeProto &attr : node->attribute())
    if (!llvm::is_contained(known, StringRef(attr.name())))
      return nodeError() << "unsupported attribute '" << attr.name() << "'";
  return success();
}

//===----------------------------------------------------------------------===//
// Known contents
//===----------------------------------------------------------------------===//

std::optional<SmallVector<OpFoldResult>>
Importer::elementsOf(TensorValue &value) {
  if (value.elems)
    return value.elems;
  if (!value.constant || value.type.getRank() > 1 ||
      !value.type.getElementType().isInteger() ||
      value.constant.getNumElements() > 4096)
    return std::nullopt;
  SmallVector<OpFoldResult> elems;
  for (APInt v : value.constant.getValues<APInt>()) {
    int64_t i = value.type.getElementType().isInteger(1) ? int64_t(v != 0)
                                                          : v.getSExtValue();
    elems.push_back(IntegerAttr::get(value.type.getElementType(), i));
  }
  return elems;
}

std::optional<SmallVector<int64_t>> Importer::constantInts(TensorValue &value) {
  std::optional<SmallVector<OpFoldResult>> elems = elementsOf(value);
  if (!elems)
    return std::nullopt;
  SmallVector<int64_t> ints;
  for (OpFoldResult ofr : *elems) {
    auto attr = dyn_cast<Attribute>(ofr);
    if (!attr)
      return std::nullopt;
    IntegerAttr integer = cast<IntegerAttr>(attr);
    ints.push_back(integer.getType().isInteger(1)
                       ? int64_t(!integer.getValue().isZero())
                       : integer.getValue().getSExtValue());
  }
  return ints;
}

TypedAttr Importer::splatOf(TensorValue &value) {
  if (value.constant && value.constant.isSplat())
    return cast<TypedAttr>(value.constant.getSplatValue<Attribute>());
  return {};
}

FailureOr<int64_t> Importer::normalizeAxis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    return nodeError() << "axis " << axis << " is out of range for rank "
                       << rank,
           failure();
  return axis < 0 ? axis + rank : axis;
}

//===----------------------------------------------------------------------===//
// The graph
//===----------------------------------------------------------------------===//

FailureOr<RankedTensorType>
Importer::inputType(const onnx::ValueInfoProto &info) {
  if (!info.type().has_tensor_type())
    return emitError(loc) << "graph input '" << info.name()
                          << "' is not a tensor",
           failure();
  const onnx::TypeProto::Tensor &tensorType = info.type().tensor_type();
  Type element = convertElementType(context, tensorType.elem_type());
  if (!element)
    return emitError(loc) << "graph input '" << info.name()
                          << "': unsupported element type "
                          << tensorType.elem_type(),
           failure();
  SmallVector<int64_t> shape;
  auto given = options.inputShapes.find(info.name());
  if (given != options.inputShapes.end()) {
    shape.assign(given->second.begin(), given->second.end());
    if (tensorType.has_shape() &&
        tensorType.shape().dim_size() != int64_t(shape.size()))
      return emitError(loc) << "--input-shape for '" << info.name()
                            << "' has rank " << shape.size()
                            << ", the model says "
                            << tensorType.shape().dim_size(),
             failure();
    for (auto [i, dim] : llvm::enumerate(shape)) {
      if (!tensorType.has_shape())
        break;
      const auto &modelDim = tensorType.shape().dim(i);
      // `?` keeps what the model says.
      if (ShapedType::isDynamic(dim) && modelDim.has_dim_value() &&
          modelDim.dim_value() >= 0)
        dim = modelDim.dim_value();
      else if (modelDim.has_dim_value() && modelDim.dim_value() != dim &&
               !ShapedType::isDynamic(dim))
        return emitError(loc) << "--input-shape for '" << info.name()
                              << "': dim " << i << " is "
                              << modelDim.dim_value() << " in the model",
               failure();
    }
  } else if (tensorType.has_shape()) {
    for (const auto &dim : tensorType.shape().dim())
      shape.push_back(dim.has_dim_value() && dim.dim_value() >= 0
                          ? dim.dim_value()
                          : ShapedType::kDynamic);
  }
  if (given == options.inputShapes.end() && !tensorType.has_shape())
    return emitError(loc) << "graph input '" << info.name()
                          << "' has no shape; give one with --input-shape",
           failure();
  int64_t count = 1;
  for (int64_t d : shape)
    if (!ShapedType::isDynamic(d) && llvm::MulOverflow(count, d, count))
      return emitError(loc) << "graph input '" << info.name()
                            << "' has more elements than fit in 64 bits",
             failure();
  return RankedTensorType::get(shape, element);
}

LogicalResult
Importer::declareInputs(SmallVectorImpl<Type> &argTypes,
                        SmallVectorImpl<DictionaryAttr> &argAttrs) {
  const onnx::GraphProto &graph = model.graph();
  llvm::StringSet<> initializerNames;
  for (const onnx::TensorProto &init : graph.initializer())
    initializerNames.insert(init.name());

  SmallVector<std::string> argNames;
  for (const onnx::ValueInfoProto &info : graph.input()) {
    // Before IR version 4 initializers are listed as inputs too.
    if (initializerNames.contains(info.name()))
      continue;
    FailureOr<RankedTensorType> type = inputType(info);
    if (failed(type))
      return failure();
    TensorValue value;
    value.type = *type;
    values[info.name()] = value;
    argTypes.push_back(*type);
    argNames.push_back(info.name());
  }
  for (const auto &entry : options.inputShapes)
    if (!values.count(entry.first))
      return emitError(loc) << "--input-shape names '" << entry.first
                            << "', which is not a graph input",
             failure();

  for (const onnx::TensorProto &init : graph.initializer()) {
    FailureOr<DenseElementsAttr> data =
        decodeTensor(context, init, modelDir, [&] { return emitError(loc); });
    if (failed(data))
      return failure();
    TensorValue value;
    value.type = cast<RankedTensorType>(data->getType());
    if (data->getNumElements() <= options.maxInlineElements) {
      value.constant = *data;
      values[init.name()] = value;
      continue;
    }
    values[init.name()] = value;
    weights.push_back({init.name(), *data});
    argTypes.push_back(value.type);
    argNames.push_back(init.name());
  }
  for (const std::string &name : argNames)
    argAttrs.push_back(builder.getDictionaryAttr(
        builder.getNamedAttr(kNameAttr, builder.getStringAttr(name))));
  return success();
}

BlockArgument Importer::graphInputArgument(StringRef name) {
  auto it = values.find(name);
  if (it == values.end())
    return {};
  return dyn_cast_or_null<BlockArgument>(it->second.tensor);
}

BlockArgument Importer::insertArgument(BlockArgument before, Type type,
                                       DictionaryAttr attrs) {
  unsigned index = before.getArgNumber();
  (void)function.insertArgument(index, type, attrs, before.getLoc());
  return function.getArgument(index);
}

LogicalResult Importer::importNode(const onnx::NodeProto &n, unsigned index) {
  node = &n;
  std::string name = n.name().empty() ? "#" + std::to_string(index) : n.name();
  loc = NameLoc::get(builder.getStringAttr(name),
                     FileLineColLoc::get(context, fileName, 0, 0));
  std::string domain = n.domain() == "ai.onnx" ? "" : n.domain();
  auto version = opsets.find(domain);
  opset = version == opsets.end() ? 0 : version->second;
  std::string key = domain.empty() ? n.op_type() : domain + "::" + n.op_type();
  auto it = table.find(key);
  if (it == table.end())
    return nodeError() << "unsupported op '" << n.op_type() << "'"
                       << (domain.empty() ? "" : " of domain '" + domain + "'")
                       << " (opset " << opset << ")";
  // Every input must be known before the op looks at it.
  for (const std::string &in : n.input())
    if (!in.empty() && !values.count(in))
      return nodeError() << "input '" << in
                         << "' is not defined before this node";
  return it->second(*this);
}

LogicalResult Importer::importGraph() {
  const onnx::GraphProto &graph = model.graph();
  for (const onnx::OperatorSetIdProto &set : model.opset_import())
    opsets[set.domain() == "ai.onnx" ? "" : set.domain()] = set.version();

  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  if (failed(declareInputs(argTypes, argAttrs)))
    return failure();

  auto module = cast<ModuleOp>(builder.getInsertionBlock()->getParentOp());
  builder.setInsertionPointToEnd(module.getBody());
  function = func::FuncOp::create(builder, loc, options.functionName,
                                  builder.getFunctionType(argTypes, {}));
  function.setAllArgAttrs(argAttrs);
  Block *entry = function.addEntryBlock();
  for (auto [arg, attrs] : llvm::zip(entry->getArguments(), argAttrs)) {
    StringRef name = cast<StringAttr>(attrs.get(kNameAttr)).getValue();
    values[name].tensor = arg;
  }
  builder.setInsertionPointToEnd(entry);

  for (auto [index, n] : llvm::enumerate(graph.node()))
    if (failed(importNode(n, index)))
      return failure();
  node = nullptr;
  loc = FileLineColLoc::get(context, fileName, 0, 0);

  SmallVector<Value> results;
  SmallVector<DictionaryAttr> resultAttrs;
  for (const onnx::ValueInfoProto &out : graph.output()) {
    if (droppedOutputs.contains(out.name()))
      continue;
    auto it = values.find(out.name());
    if (it == values.end())
      return emitError(loc) << "graph output '" << out.name()
                            << "' is not computed by any node",
             failure();
    results.push_back(materialize(it->second));
    resultAttrs.push_back(builder.getDictionaryAttr(builder.getNamedAttr(
        kNameAttr, builder.getStringAttr(out.name()))));
  }
  func::ReturnOp::create(builder, loc, results);
  SmallVector<Type> argTypesNow(entry->getArgumentTypes());
  function.setType(builder.getFunctionType(argTypesNow, ValueRange(results)));
  function.setAllResultAttrs(resultAttrs);

  // Shape arithmetic and look-through folds leave unused ops behind; they
  // would look like extra users of the caches to later passes.
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(*entry)))
    if (isOpTriviallyDead(&op))
      op.erase();

  // Graph inputs replaced by caches leave the signature once nothing reads
  // them.
  llvm::BitVector unused(function.getNumArguments());
  for (BlockArgument arg : function.getArguments())
    if (arg.use_empty() && replacedArguments.contains(arg))
      unused.set(arg.getArgNumber());
  (void)function.eraseArguments(unused);
  return success();
}

OwningOpRef<ModuleOp> Importer::run() {
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  builder.setInsertionPointToEnd(module->getBody());
  if (failed(importGraph()))
    return nullptr;
  if (failed(verify(*module)))
    return nullptr;
  if (options.weightsOut.empty())
    return module;

  std::vector<SafeTensorToWrite> tensors;
  for (BlockArgument arg : function.getArguments()) {
    auto name = function.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                      kNameAttr);
    const auto *weight = llvm::find_if(
        weights, [&](const auto &w) { return name && w.first == name; });
    if (weight == weights.end())
      continue;
    DenseElementsAttr data = weight->second;
    Type element = data.getElementType();
    SafeTensorToWrite tensor;
    tensor.name = weight->first;
    tensor.shape.assign(data.getType().getShape().begin(),
                        data.getType().getShape().end());
    if (element.isInteger(1)) {
      tensor.dtype = "BOOL";
      for (bool b : data.getValues<bool>())
        tensor.data.push_back(b);
    } else {
      tensor.dtype = element.isF32()          ? "F32"
                     : element.isF16()        ? "F16"
                     : element.isBF16()       ? "BF16"
                     : element.isF64()        ? "F64"
                     : element.isInteger(64)  ? "I64"
                     : element.isInteger(32)  ? "I32"
                                              : "I8";
      size_t bytes = size_t(data.getNumElements()) *
                     (element.getIntOrFloatBitWidth() / 8);
      ArrayRef<char> raw = data.getRawData();
      if (data.isSplat()) {
        for (int64_t i = 0; i < data.getNumElements(); ++i)
          tensor.data.insert(tensor.data.end(), raw.begin(), raw.end());
      } else {
        tensor.data.assign(raw.begin(), raw.begin() + bytes);
      }
    }
    tensors.push_back(std::move(tensor));
  }
  if (llvm::Error err = writeSafeTensors(options.weightsOut, tensors)) {
    emitError(loc) << "cannot write weights: "
                   << llvm::toString(std::move(err));
    return nullptr;
  }
  return module;
}

} // namespace onnx_import
} // namespace kvc
