//===- TensorDecode.cpp - ONNX TensorProto -> DenseElementsAttr -----------===//
//
// Initializers and Constant values arrive as raw little-endian bytes, as
// typed repeated fields, or in an external file beside the model. All three
// are checked against the declared dims before any byte is read, so that a
// corrupt model is an error, never an out-of-bounds read.
//
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cstring>

using namespace mlir;

namespace kvc {
namespace onnx_import {

Type convertElementType(MLIRContext *context, int32_t onnxType) {
  Builder b(context);
  switch (onnxType) {
  case onnx::TensorProto::FLOAT:
    return b.getF32Type();
  case onnx::TensorProto::FLOAT16:
    return b.getF16Type();
  case onnx::TensorProto::BFLOAT16:
    return b.getBF16Type();
  case onnx::TensorProto::DOUBLE:
    return b.getF64Type();
  case onnx::TensorProto::INT64:
    return b.getI64Type();
  case onnx::TensorProto::INT32:
    return b.getI32Type();
  case onnx::TensorProto::INT8:
    return b.getI8Type();
  case onnx::TensorProto::BOOL:
    return b.getI1Type();
  default:
    return Type();
  }
}

/// Bytes per element in the raw_data encoding.
static size_t rawElementSize(Type type) {
  if (type.isInteger(1))
    return 1;
  return type.getIntOrFloatBitWidth() / 8;
}

/// The bytes of an external tensor: `location`, `offset`, `length` keys,
/// the file relative to the model's directory.
static FailureOr<std::string>
readExternal(const onnx::TensorProto &tensor, StringRef modelDir,
             function_ref<InFlightDiagnostic()> emitError) {
  std::string location;
  uint64_t offset = 0;
  std::optional<uint64_t> length;
  for (const onnx::StringStringEntryProto &entry : tensor.external_data()) {
    StringRef value = entry.value();
    if (entry.key() == "location") {
      location = entry.value();
    } else if (entry.key() == "offset" || entry.key() == "length") {
      uint64_t parsed;
      if (value.getAsInteger(10, parsed)) {
        emitError() << "tensor '" << tensor.name() << "': external data "
                    << entry.key() << " '" << value << "' is not a number";
        return failure();
      }
      if (entry.key() == "offset")
        offset = parsed;
      else
        length = parsed;
    }
  }
  if (location.empty()) {
    emitError() << "tensor '" << tensor.name()
                << "': external data without a location";
    return failure();
  }
  // As the ONNX checker requires: a relative path inside the model's
  // directory, naming a regular file (not a device or a directory).
  if (llvm::sys::path::is_absolute(location) ||
      llvm::is_contained(llvm::make_range(llvm::sys::path::begin(location),
                                          llvm::sys::path::end(location)),
                         "..")) {
    emitError() << "tensor '" << tensor.name() << "': external data location '"
                << location
                << "' must be a relative path inside the model's directory";
    return failure();
  }
  SmallString<256> path(modelDir);
  llvm::sys::path::append(path, location);
  if (!llvm::sys::fs::is_regular_file(path)) {
    emitError() << "tensor '" << tensor.name() << "': cannot read external "
                << "data file '" << path << "': not a regular file";
    return failure();
  }
  auto file = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                          /*RequiresNullTerminator=*/false);
  if (!file) {
    emitError() << "tensor '" << tensor.name() << "': cannot read external "
                << "data file '" << path << "': " << file.getError().message();
    return failure();
  }
  StringRef bytes = (*file)->getBuffer();
  uint64_t size = length.value_or(bytes.size() >= offset
                                      ? bytes.size() - offset
                                      : 0);
  if (offset > bytes.size() || size > bytes.size() - offset) {
    emitError() << "tensor '" << tensor.name() << "': external data range ["
                << offset << ", " << offset + size << ") is outside '" << path
                << "' (" << bytes.size() << " bytes)";
    return failure();
  }
  return bytes.substr(offset, size).str();
}

/// Copies a typed repeated field into little-endian bytes of `type`.
template <typename Field>
static std::string packField(const Field &field, Type type) {
  std::string bytes;
  size_t width = rawElementSize(type);
  bytes.resize(size_t(field.size()) * width);
  char *out = bytes.data();
  for (auto v : field) {
    if (type.isF32()) {
      float f = float(v);
      std::memcpy(out, &f, 4);
    } else if (type.isF64()) {
      double d = double(v);
      std::memcpy(out, &d, 8);
    } else if (type.isF16() || type.isBF16()) {
      uint16_t bits = uint16_t(v);
      std::memcpy(out, &bits, 2);
    } else if (type.isInteger(1)) {
      *out = v != 0;
    } else {
      int64_t i = int64_t(v);
      std::memcpy(out, &i, width); // little-endian host
    }
    out += width;
  }
  return bytes;
}

FailureOr<DenseElementsAttr>
decodeTensor(MLIRContext *context, const onnx::TensorProto &tensor,
             StringRef modelDir, function_ref<InFlightDiagnostic()> emitError) {
  Type element = convertElementType(context, tensor.data_type());
  if (!element) {
    emitError() << "tensor '" << tensor.name() << "': unsupported data type "
                << tensor.data_type();
    return failure();
  }
  SmallVector<int64_t> shape;
  uint64_t count = 1;
  for (int64_t dim : tensor.dims()) {
    // Caps the element count far below what could overflow byte sizes.
    if (dim < 0 || (dim > 0 && count > (uint64_t(1) << 40) / uint64_t(dim))) {
      emitError() << "tensor '" << tensor.name() << "': invalid dims";
      return failure();
    }
    shape.push_back(dim);
    count *= uint64_t(dim);
  }
  size_t width = rawElementSize(element);
  std::string bytes;
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) {
    FailureOr<std::string> external = readExternal(tensor, modelDir, emitError);
    if (failed(external))
      return failure();
    bytes = std::move(*external);
  } else if (tensor.has_raw_data()) {
    bytes = tensor.raw_data();
  } else if (element.isF32()) {
    bytes = packField(tensor.float_data(), element);
  } else if (element.isF64()) {
    bytes = packField(tensor.double_data(), element);
  } else if (element.isInteger(64)) {
    bytes = packField(tensor.int64_data(), element);
  } else {
    // int32, int8, bool, float16 and bfloat16 (as bits) use int32_data.
    bytes = packField(tensor.int32_data(), element);
  }
  if (bytes.size() != count * width) {
    emitError() << "tensor '" << tensor.name() << "': holds " << bytes.size()
                << " bytes, but its dims and type need " << count * width;
    return failure();
  }
  auto type = RankedTensorType::get(shape, element);
  if (element.isInteger(1)) {
    SmallVector<bool> bools;
    bools.reserve(count);
    for (char c : bytes)
      bools.push_back(c != 0);
    return DenseElementsAttr::get(type, bools);
  }
  if (count == 0)
    return DenseElementsAttr::get(type, ArrayRef<Attribute>());
  return DenseElementsAttr::getFromRawBuffer(
      type, ArrayRef<char>(bytes.data(), bytes.size()));
}

} // namespace onnx_import
} // namespace kvc
