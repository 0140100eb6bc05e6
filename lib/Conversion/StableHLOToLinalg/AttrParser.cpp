//===- AttrParser.cpp - StableHLO attributes from their opaque text -------===//

#include "AttrParser.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::kvc;
using namespace mlir::kvc::shlo;

namespace {

/// Splits attribute text into identifiers, integers and the punctuation
/// `< > [ ] , =`; anything else is an error.
class Lexer {
public:
  enum class Kind { Identifier, Integer, Punct, End, Error };
  struct Token {
    Kind kind;
    StringRef text;
    size_t column;
  };

  explicit Lexer(StringRef text) : text(text) {}

  Token next() {
    while (pos < text.size() && llvm::isSpace(text[pos]))
      ++pos;
    size_t start = pos;
    if (pos >= text.size())
      return {Kind::End, "", start};
    char c = text[pos];
    if (llvm::isAlpha(c) || c == '_') {
      while (pos < text.size() && (llvm::isAlnum(text[pos]) || text[pos] == '_'))
        ++pos;
      return {Kind::Identifier, text.slice(start, pos), start};
    }
    if (llvm::isDigit(c) || c == '-') {
      ++pos;
      while (pos < text.size() && llvm::isDigit(text[pos]))
        ++pos;
      StringRef number = text.slice(start, pos);
      if (number == "-")
        return {Kind::Error, number, start};
      return {Kind::Integer, number, start};
    }
    if (StringRef("<>[],=").contains(c)) {
      ++pos;
      return {Kind::Punct, text.slice(start, pos), start};
    }
    ++pos;
    return {Kind::Error, text.slice(start, pos), start};
  }

private:
  StringRef text;
  size_t pos = 0;
};

/// A recursive-descent reader over the lexer with one token of lookahead.
class Reader {
public:
  Reader(StringRef text, std::string &error) : lexer(text), error(error) {
    current = lexer.next();
  }

  const Lexer::Token &peek() const { return current; }
  Lexer::Token take() {
    Lexer::Token token = current;
    current = lexer.next();
    return token;
  }

  LogicalResult fail(const Twine &message) {
    error = (message + " at column " + Twine(current.column + 1)).str();
    return failure();
  }

  bool isPunct(StringRef p) const {
    return current.kind == Lexer::Kind::Punct && current.text == p;
  }
  LogicalResult expectPunct(StringRef p) {
    if (!isPunct(p))
      return fail("expected '" + p + "'" + found());
    take();
    return success();
  }
  LogicalResult expectIdentifier(StringRef &out) {
    if (current.kind != Lexer::Kind::Identifier)
      return fail("expected an identifier" + found());
    out = take().text;
    return success();
  }
  LogicalResult parseInteger(int64_t &out) {
    if (current.kind != Lexer::Kind::Integer)
      return fail("expected an integer" + found());
    if (current.text.getAsInteger(10, out))
      return fail("integer '" + current.text + "' out of range");
    take();
    return success();
  }
  LogicalResult parseIntegerList(DimList &out) {
    if (failed(expectPunct("[")))
      return failure();
    if (isPunct("]")) {
      take();
      return success();
    }
    while (true) {
      int64_t value = 0;
      if (failed(parseInteger(value)))
        return failure();
      out.push_back(value);
      if (isPunct("]")) {
        take();
        return success();
      }
      if (failed(expectPunct(",")))
        return failure();
    }
  }
  LogicalResult expectEnd() {
    if (current.kind != Lexer::Kind::End)
      return fail("unexpected trailing text" + found());
    return success();
  }

private:
  std::string found() const {
    switch (current.kind) {
    case Lexer::Kind::End:
      return ", found the end of the text";
    case Lexer::Kind::Error:
      return (", found invalid character '" + current.text + "'").str();
    default:
      return (", found '" + current.text + "'").str();
    }
  }

  Lexer lexer;
  Lexer::Token current;
  std::string &error;
};

} // namespace

LogicalResult shlo::parseStructText(StringRef text, StringRef mnemonic,
                                    ArrayRef<StructField> fields,
                                    SmallVectorImpl<DimList> &values,
                                    std::string &error) {
  values.assign(fields.size(), DimList());
  SmallVector<bool> seen(fields.size(), false);
  Reader reader(text, error);
  StringRef name;
  if (failed(reader.expectIdentifier(name)))
    return failure();
  if (name != mnemonic)
    return reader.fail("expected '" + mnemonic + "', found '" + name + "'");
  if (failed(reader.expectPunct("<")))
    return failure();
  bool first = true;
  while (!reader.isPunct(">")) {
    if (!first && failed(reader.expectPunct(",")))
      return failure();
    first = false;
    StringRef key;
    if (failed(reader.expectIdentifier(key)))
      return failure();
    auto it = llvm::find_if(
        fields, [&](const StructField &field) { return field.name == key; });
    if (it == fields.end())
      return reader.fail("unknown field '" + key + "'");
    size_t index = it - fields.begin();
    if (seen[index])
      return reader.fail("field '" + key + "' given twice");
    seen[index] = true;
    if (failed(reader.expectPunct("=")))
      return failure();
    if (it->isList) {
      if (failed(reader.parseIntegerList(values[index])))
        return failure();
    } else {
      int64_t value = 0;
      if (failed(reader.parseInteger(value)))
        return failure();
      values[index].push_back(value);
    }
  }
  reader.take();
  if (failed(reader.expectEnd()))
    return failure();
  for (auto [field, wasSeen] : llvm::zip(fields, seen))
    if (field.required && !wasSeen) {
      error = ("missing field '" + field.name + "'").str();
      return failure();
    }
  return success();
}

LogicalResult shlo::parseEnumText(StringRef text, StringRef keyword,
                                  ArrayRef<StringRef> allowed,
                                  StringRef &value, std::string &error) {
  Reader reader(text, error);
  StringRef name;
  if (failed(reader.expectIdentifier(name)))
    return failure();
  if (name != keyword)
    return reader.fail("expected '" + keyword + "', found '" + name + "'");
  if (failed(reader.expectIdentifier(value)))
    return failure();
  if (failed(reader.expectEnd()))
    return failure();
  if (!llvm::is_contained(allowed, value)) {
    error = ("unknown " + keyword + " '" + value + "' (expected one of " +
             llvm::join(allowed, ", ") + ")")
                .str();
    return failure();
  }
  return success();
}

Attribute shlo::getOpAttr(Operation *op, StringRef name) {
  if (Attribute attr = op->getAttr(name))
    return attr;
  // Unregistered ops keep their properties as a dictionary.
  if (auto props = dyn_cast_or_null<DictionaryAttr>(op->getPropertiesAsAttribute()))
    return props.get(name);
  return {};
}

/// The text of the opaque attribute `name` of dialect stablehlo.
static FailureOr<StringRef> opaqueText(Operation *op, StringRef name,
                                       bool required, bool emitErrors) {
  Attribute attr = getOpAttr(op, name);
  if (!attr) {
    if (!required)
      return StringRef();
    if (emitErrors)
      op->emitError() << "missing attribute '" << name << "'";
    return failure();
  }
  auto opaque = dyn_cast<OpaqueAttr>(attr);
  if (!opaque || opaque.getDialectNamespace() != "stablehlo") {
    if (emitErrors)
      op->emitError() << "attribute '" << name
                      << "' is not a #stablehlo attribute: " << attr;
    return failure();
  }
  return opaque.getAttrData();
}

static InFlightDiagnostic malformed(Operation *op, StringRef name,
                                    StringRef text, StringRef error) {
  return op->emitError() << "malformed attribute '" << name << "' (#stablehlo"
                         << (text.contains('<') ? "." : "<") << text
                         << (text.contains('<') ? "" : ">")
                         << "): " << error;
}

/// Parses the struct attribute `name` into the lists of `fields`.
static LogicalResult readStruct(Operation *op, StringRef name,
                                StringRef mnemonic,
                                ArrayRef<StructField> fields,
                                SmallVectorImpl<DimList> &values,
                                bool emitErrors) {
  FailureOr<StringRef> text = opaqueText(op, name, true, emitErrors);
  if (failed(text))
    return failure();
  std::string error;
  if (failed(parseStructText(*text, mnemonic, fields, values, error))) {
    if (emitErrors)
      malformed(op, name, *text, error);
    return failure();
  }
  return success();
}

FailureOr<DotDimensions> shlo::readDotDimensions(Operation *op,
                                                 bool emitErrors) {
  static const StructField fields[] = {
      {"lhs_batching_dimensions", true, false},
      {"rhs_batching_dimensions", true, false},
      {"lhs_contracting_dimensions", true, false},
      {"rhs_contracting_dimensions", true, false}};
  SmallVector<DimList> values;
  if (failed(readStruct(op, "dot_dimension_numbers", "dot", fields, values,
                        emitErrors)))
    return failure();
  return DotDimensions{values[0], values[1], values[2], values[3]};
}

FailureOr<GatherDimensions> shlo::readGatherDimensions(Operation *op,
                                                       bool emitErrors) {
  static const StructField fields[] = {
      {"offset_dims", true, false},
      {"collapsed_slice_dims", true, false},
      {"operand_batching_dims", true, false},
      {"start_indices_batching_dims", true, false},
      {"start_index_map", true, false},
      {"index_vector_dim", false, true}};
  SmallVector<DimList> values;
  if (failed(readStruct(op, "dimension_numbers", "gather", fields, values,
                        emitErrors)))
    return failure();
  return GatherDimensions{values[0], values[1], values[2],
                          values[3], values[4], values[5][0]};
}

FailureOr<ScatterDimensions> shlo::readScatterDimensions(Operation *op,
                                                         bool emitErrors) {
  static const StructField fields[] = {
      {"update_window_dims", true, false},
      {"inserted_window_dims", true, false},
      {"input_batching_dims", true, false},
      {"scatter_indices_batching_dims", true, false},
      {"scatter_dims_to_operand_dims", true, false},
      {"index_vector_dim", false, true}};
  SmallVector<DimList> values;
  if (failed(readStruct(op, "scatter_dimension_numbers", "scatter", fields,
                        values, emitErrors)))
    return failure();
  return ScatterDimensions{values[0], values[1], values[2],
                           values[3], values[4], values[5][0]};
}

FailureOr<StringRef> shlo::readEnum(Operation *op, StringRef name,
                                    StringRef mnemonic,
                                    ArrayRef<StringRef> allowed, bool required,
                                    bool emitErrors) {
  FailureOr<StringRef> text = opaqueText(op, name, required, emitErrors);
  if (failed(text) || text->empty())
    return text;
  StringRef value;
  std::string error;
  if (failed(parseEnumText(*text, mnemonic, allowed, value, error))) {
    if (emitErrors)
      malformed(op, name, *text, error);
    return failure();
  }
  return value;
}

LogicalResult shlo::checkPrecisionConfig(Operation *op, bool emitErrors) {
  Attribute attr = getOpAttr(op, "precision_config");
  if (!attr)
    return success();
  auto array = dyn_cast<ArrayAttr>(attr);
  if (!array) {
    if (emitErrors)
      op->emitError() << "attribute 'precision_config' is not an array";
    return failure();
  }
  for (Attribute element : array) {
    auto opaque = dyn_cast<OpaqueAttr>(element);
    StringRef value;
    std::string error = "not a #stablehlo attribute";
    if (!opaque || opaque.getDialectNamespace() != "stablehlo" ||
        failed(parseEnumText(opaque.getAttrData(), "precision",
                             {"DEFAULT", "HIGH", "HIGHEST"}, value, error))) {
      if (emitErrors)
        op->emitError() << "malformed attribute 'precision_config' ("
                        << element << "): " << error;
      return failure();
    }
  }
  return success();
}

FailureOr<DimList> shlo::readDims(Operation *op, StringRef name,
                                  bool required, bool emitErrors) {
  Attribute attr = getOpAttr(op, name);
  if (!attr) {
    if (!required)
      return DimList();
    if (emitErrors)
      op->emitError() << "missing attribute '" << name << "'";
    return failure();
  }
  if (auto array = dyn_cast<DenseI64ArrayAttr>(attr))
    return DimList(array.asArrayRef());
  if (auto dense = dyn_cast<DenseIntElementsAttr>(attr);
      dense && dense.getType().getRank() == 1) {
    DimList dims;
    for (const APInt &value : dense)
      dims.push_back(value.getSExtValue());
    return dims;
  }
  if (emitErrors)
    op->emitError() << "attribute '" << name
                    << "' is not a list of integers: " << attr;
  return failure();
}

FailureOr<int64_t> shlo::readInteger(Operation *op, StringRef name,
                                     bool emitErrors) {
  auto attr = dyn_cast_or_null<IntegerAttr>(getOpAttr(op, name));
  if (!attr) {
    if (emitErrors)
      op->emitError() << "missing or non-integer attribute '" << name << "'";
    return failure();
  }
  return attr.getInt();
}
