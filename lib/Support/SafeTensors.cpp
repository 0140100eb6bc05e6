//===- SafeTensors.cpp - Reading and writing .safetensors files -----------===//

#include "kvc/Support/SafeTensors.h"

#include "kvc/Numerics/Half.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstring>
#include <limits>

using llvm::Expected;
using llvm::StringRef;

namespace kvc {

namespace {
// A header larger than this is certainly corrupt (real ones are kilobytes).
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

llvm::Error makeError(StringRef file, const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 (file + ": " + msg).str());
}

uint64_t load64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}

/// Elements of `shape`, or nullopt on overflow / negative extents.
std::optional<uint64_t> countElements(llvm::ArrayRef<int64_t> shape) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0)
      return std::nullopt;
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / uint64_t(d))
      return std::nullopt;
    n *= uint64_t(d);
  }
  return n;
}

/// Parses one tensor entry of the header.
Expected<SafeTensorInfo> parseEntry(StringRef file, StringRef name,
                                    const llvm::json::Value &value,
                                    uint64_t dataBytes) {
  auto bad = [&](const llvm::Twine &why) {
    return makeError(file, "tensor '" + name + "': " + why);
  };
  const llvm::json::Object *obj = value.getAsObject();
  if (!obj)
    return bad("entry is not a JSON object");
  SafeTensorInfo info;
  info.name = name.str();
  std::optional<StringRef> dtype = obj->getString("dtype");
  if (!dtype)
    return bad("missing string 'dtype'");
  info.dtype = dtype->str();
  const size_t elemSize = safeTensorsElementSize(*dtype);
  if (elemSize == 0)
    return bad("unknown dtype '" + *dtype + "'");
  const llvm::json::Array *shape = obj->getArray("shape");
  if (!shape)
    return bad("missing array 'shape'");
  for (const llvm::json::Value &d : *shape) {
    std::optional<int64_t> v = d.getAsInteger();
    if (!v || *v < 0)
      return bad("shape entries must be non-negative integers");
    info.shape.push_back(*v);
  }
  const llvm::json::Array *offsets = obj->getArray("data_offsets");
  if (!offsets || offsets->size() != 2)
    return bad("'data_offsets' must be an array [begin, end]");
  std::optional<int64_t> begin = (*offsets)[0].getAsInteger();
  std::optional<int64_t> end = (*offsets)[1].getAsInteger();
  if (!begin || !end || *begin < 0 || *end < *begin)
    return bad("'data_offsets' must be integers with 0 <= begin <= end");
  info.begin = uint64_t(*begin);
  info.end = uint64_t(*end);
  if (info.end > dataBytes)
    return bad("data [" + llvm::Twine(info.begin) + ", " +
               llvm::Twine(info.end) + ") runs past the end of the file (" +
               llvm::Twine(dataBytes) + " data bytes): truncated file?");
  std::optional<uint64_t> numel = countElements(info.shape);
  if (!numel || *numel > std::numeric_limits<uint64_t>::max() / elemSize)
    return bad("shape is too large");
  if (*numel * elemSize != info.end - info.begin)
    return bad("shape and dtype need " + llvm::Twine(*numel * elemSize) +
               " bytes but data_offsets span " +
               llvm::Twine(info.end - info.begin));
  return info;
}
} // namespace

size_t safeTensorsElementSize(StringRef dtype) {
  return llvm::StringSwitch<size_t>(dtype)
      .Cases({"F64", "I64", "U64"}, 8)
      .Cases({"F32", "I32", "U32"}, 4)
      .Cases({"F16", "BF16", "I16", "U16"}, 2)
      .Cases({"I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"}, 1)
      .Default(0);
}

uint64_t SafeTensorInfo::numElements() const {
  return countElements(shape).value_or(0);
}

Expected<SafeTensorsFile> SafeTensorsFile::open(StringRef path) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buf =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                  /*RequiresNullTerminator=*/false);
  if (!buf)
    return makeError(path, "cannot read: " + buf.getError().message());
  return parse(std::move(*buf), path);
}

Expected<SafeTensorsFile>
SafeTensorsFile::parse(std::unique_ptr<llvm::MemoryBuffer> buffer,
                       StringRef name) {
  const uint64_t size = buffer->getBufferSize();
  if (size < 8)
    return makeError(name, "file too small (" + llvm::Twine(size) +
                               " bytes) for the 8-byte header length");
  const auto *bytes =
      reinterpret_cast<const uint8_t *>(buffer->getBufferStart());
  const uint64_t headerLen = load64(bytes);
  if (headerLen > size - 8 || headerLen > kMaxHeaderBytes)
    return makeError(name, "header length " + llvm::Twine(headerLen) +
                               " exceeds the file size (" + llvm::Twine(size) +
                               " bytes): truncated or not a safetensors file");
  StringRef headerText(buffer->getBufferStart() + 8, headerLen);
  Expected<llvm::json::Value> header = llvm::json::parse(headerText);
  if (!header)
    return makeError(name, "invalid JSON header: " +
                               llvm::toString(header.takeError()));
  const llvm::json::Object *root = header->getAsObject();
  if (!root)
    return makeError(name, "the JSON header is not an object");

  SafeTensorsFile file;
  file.fileName = name.str();
  file.dataStart = 8 + headerLen;
  const uint64_t dataBytes = size - file.dataStart;
  for (const auto &kv : *root) {
    StringRef key = kv.first;
    if (key == "__metadata__") {
      const llvm::json::Object *m = kv.second.getAsObject();
      if (!m)
        return makeError(name, "'__metadata__' is not an object");
      for (const auto &entry : *m) {
        std::optional<StringRef> s = entry.second.getAsString();
        if (!s)
          return makeError(name, "'__metadata__' values must be strings");
        file.meta[entry.first.str()] = s->str();
      }
      continue;
    }
    Expected<SafeTensorInfo> info = parseEntry(name, key, kv.second, dataBytes);
    if (!info)
      return info.takeError();
    file.infos.push_back(std::move(*info));
  }
  // Tensors must not overlap.
  std::vector<const SafeTensorInfo *> byOffset;
  for (const SafeTensorInfo &i : file.infos)
    byOffset.push_back(&i);
  std::sort(byOffset.begin(), byOffset.end(),
            [](const SafeTensorInfo *a, const SafeTensorInfo *b) {
              return a->begin < b->begin;
            });
  for (size_t i = 1; i < byOffset.size(); ++i)
    if (byOffset[i]->begin < byOffset[i - 1]->end)
      return makeError(name, "tensors '" + byOffset[i - 1]->name + "' and '" +
                                 byOffset[i]->name + "' overlap");
  std::sort(file.infos.begin(), file.infos.end(),
            [](const SafeTensorInfo &a, const SafeTensorInfo &b) {
              return a.name < b.name;
            });
  file.buffer = std::move(buffer);
  return std::move(file);
}

const SafeTensorInfo *SafeTensorsFile::find(StringRef name) const {
  auto it = std::lower_bound(
      infos.begin(), infos.end(), name,
      [](const SafeTensorInfo &a, StringRef n) { return StringRef(a.name) < n; });
  return it != infos.end() && it->name == name ? &*it : nullptr;
}

llvm::ArrayRef<uint8_t>
SafeTensorsFile::rawData(const SafeTensorInfo &info) const {
  const auto *start =
      reinterpret_cast<const uint8_t *>(buffer->getBufferStart()) + dataStart;
  return llvm::ArrayRef<uint8_t>(start + info.begin, info.end - info.begin);
}

Expected<std::vector<float>>
SafeTensorsFile::readFloats(StringRef name) const {
  const SafeTensorInfo *info = find(name);
  if (!info)
    return makeError(fileName, "no tensor named '" + name + "'");
  llvm::ArrayRef<uint8_t> raw = rawData(*info);
  const size_t n = info->numElements();
  std::vector<float> out(n);
  const StringRef dtype = info->dtype;
  for (size_t i = 0; i < n; ++i) {
    if (dtype == "F16" || dtype == "BF16") {
      const uint16_t h = static_cast<uint16_t>(raw[2 * i] | raw[2 * i + 1] << 8);
      out[i] = dtype == "F16" ? numerics::halfToFloat(h)
                              : numerics::bfloat16ToFloat(h);
    } else if (dtype == "F32") {
      uint32_t u = 0;
      for (int b = 3; b >= 0; --b)
        u = (u << 8) | raw[4 * i + b];
      std::memcpy(&out[i], &u, 4);
    } else if (dtype == "F64") {
      const uint64_t u = load64(raw.data() + 8 * i);
      double d;
      std::memcpy(&d, &u, 8);
      out[i] = static_cast<float>(d);
    } else {
      return makeError(fileName, "tensor '" + name + "' has dtype " + dtype +
                                     ", not a float type (F16/BF16/F32/F64)");
    }
  }
  return out;
}

Expected<SafeTensorToWrite> makeSafeTensor(StringRef name, StringRef dtype,
                                           std::vector<int64_t> shape,
                                           llvm::ArrayRef<float> values) {
  std::optional<uint64_t> numel = countElements(shape);
  if (!numel || *numel != values.size())
    return makeError(name, "shape does not match the number of values");
  SafeTensorToWrite t{name.str(), dtype.str(), std::move(shape), {}};
  if (dtype == "F16" || dtype == "BF16") {
    for (float v : values) {
      const uint16_t h = dtype == "F16" ? numerics::floatToHalf(v)
                                        : numerics::floatToBFloat16(v);
      t.data.push_back(static_cast<uint8_t>(h));
      t.data.push_back(static_cast<uint8_t>(h >> 8));
    }
  } else if (dtype == "F32") {
    for (float v : values) {
      uint32_t u;
      std::memcpy(&u, &v, 4);
      for (int b = 0; b < 4; ++b)
        t.data.push_back(static_cast<uint8_t>(u >> (8 * b)));
    }
  } else {
    return makeError(name, "makeSafeTensor supports F16, BF16 and F32, not " +
                               dtype);
  }
  return t;
}

llvm::Error
writeSafeTensors(StringRef path, llvm::ArrayRef<SafeTensorToWrite> tensors,
                 const std::map<std::string, std::string> &metadata) {
  llvm::json::Object header;
  uint64_t offset = 0;
  for (const SafeTensorToWrite &t : tensors) {
    const size_t elemSize = safeTensorsElementSize(t.dtype);
    std::optional<uint64_t> numel = countElements(t.shape);
    if (elemSize == 0)
      return makeError(path, "tensor '" + t.name + "': unknown dtype '" +
                                 t.dtype + "'");
    if (!numel || *numel * elemSize != t.data.size())
      return makeError(path, "tensor '" + t.name +
                                 "': data size does not match dtype and shape");
    if (t.name == "__metadata__" || header.find(t.name) != header.end())
      return makeError(path, "duplicate or reserved tensor name '" + t.name +
                                 "'");
    llvm::json::Array shape;
    for (int64_t d : t.shape)
      shape.push_back(d);
    header[t.name] = llvm::json::Object{
        {"dtype", t.dtype},
        {"shape", std::move(shape)},
        {"data_offsets",
         llvm::json::Array{int64_t(offset), int64_t(offset + t.data.size())}}};
    offset += t.data.size();
  }
  if (!metadata.empty()) {
    llvm::json::Object m;
    for (const auto &kv : metadata)
      m[kv.first] = kv.second;
    header["__metadata__"] = std::move(m);
  }
  std::string text;
  llvm::raw_string_ostream(text) << llvm::json::Value(std::move(header));
  text.append((8 - text.size() % 8) % 8, ' ');

  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return makeError(path, "cannot open for writing: " + ec.message());
  const uint64_t len = text.size();
  for (int b = 0; b < 8; ++b)
    os << static_cast<char>((len >> (8 * b)) & 0xFF);
  os << text;
  for (const SafeTensorToWrite &t : tensors)
    os.write(reinterpret_cast<const char *>(t.data.data()), t.data.size());
  os.close();
  if (os.has_error()) {
    std::error_code err = os.error();
    os.clear_error();
    return makeError(path, "write failed: " + err.message());
  }
  return llvm::Error::success();
}

} // namespace kvc
