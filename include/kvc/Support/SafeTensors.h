//===- SafeTensors.h - Reading and writing .safetensors files ---*- C++ -*-===//
//
// safetensors: an 8-byte little-endian header length N, N bytes of JSON
// ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
// optional "__metadata__": {string: string}}), then the raw little-endian
// tensor data; offsets are relative to the start of the data. The header is
// parsed with llvm::json; every malformed or truncated file is reported as an
// llvm::Error naming the file and the problem, never a crash.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_SUPPORT_SAFETENSORS_H
#define KVC_SUPPORT_SAFETENSORS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kvc {

/// Bytes per element of a safetensors dtype ("F16", "F32", ...); 0 if unknown.
size_t safeTensorsElementSize(llvm::StringRef dtype);

/// One tensor entry of the header.
struct SafeTensorInfo {
  std::string name;
  std::string dtype;          ///< as spelled in the file: "F16", "BF16", ...
  std::vector<int64_t> shape; ///< empty for a scalar
  uint64_t begin = 0;         ///< byte offsets into the data section
  uint64_t end = 0;
  uint64_t numElements() const;
};

/// A parsed safetensors file (owns its bytes).
class SafeTensorsFile {
public:
  /// Reads and validates `path`.
  static llvm::Expected<SafeTensorsFile> open(llvm::StringRef path);
  /// Validates an in-memory file; `name` is used in messages.
  static llvm::Expected<SafeTensorsFile>
  parse(std::unique_ptr<llvm::MemoryBuffer> buffer, llvm::StringRef name);

  /// All tensors, sorted by name.
  const std::vector<SafeTensorInfo> &tensors() const { return infos; }
  /// The tensor called `name`, or null.
  const SafeTensorInfo *find(llvm::StringRef name) const;
  /// The "__metadata__" entries.
  const std::map<std::string, std::string> &metadata() const { return meta; }
  /// Raw bytes of a tensor (may be unaligned).
  llvm::ArrayRef<uint8_t> rawData(const SafeTensorInfo &info) const;

  /// The tensor's elements as floats; F16, BF16, F32 (and F64, rounded)
  /// are supported, other dtypes are an error.
  llvm::Expected<std::vector<float>> readFloats(llvm::StringRef name) const;

private:
  std::unique_ptr<llvm::MemoryBuffer> buffer;
  std::string fileName;
  uint64_t dataStart = 0;
  std::vector<SafeTensorInfo> infos;
  std::map<std::string, std::string> meta;
};

/// A tensor to write: raw little-endian bytes of `dtype`.
struct SafeTensorToWrite {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

/// Float data converted to "F16" or "BF16" (round to nearest even) or
/// "F32"; other dtypes, or a shape that does not match, are an error.
llvm::Expected<SafeTensorToWrite>
makeSafeTensor(llvm::StringRef name, llvm::StringRef dtype,
               std::vector<int64_t> shape, llvm::ArrayRef<float> values);

/// Writes a safetensors file (tensors in the given order; header padded with
/// spaces to a multiple of 8 bytes). Checks that each tensor's byte size
/// matches its dtype and shape.
llvm::Error writeSafeTensors(llvm::StringRef path,
                             llvm::ArrayRef<SafeTensorToWrite> tensors,
                             const std::map<std::string, std::string>
                                 &metadata = {});

} // namespace kvc

#endif // KVC_SUPPORT_SAFETENSORS_H
