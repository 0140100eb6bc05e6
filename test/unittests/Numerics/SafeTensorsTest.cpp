//===- SafeTensorsTest.cpp - safetensors reader/writer tests --------------===//

#include "kvc/Numerics/Half.h"
#include "kvc/Support/SafeTensors.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include "gtest/gtest.h"

#include <cmath>
#include <fstream>

using namespace kvc;

namespace {
/// A fresh temporary directory, removed with its files at the end.
class TempDir {
public:
  TempDir() {
    std::error_code ec =
        llvm::sys::fs::createUniqueDirectory("kvc-safetensors", path);
    EXPECT_FALSE(ec) << ec.message();
  }
  ~TempDir() { llvm::sys::fs::remove_directories(path); }
  std::string file(llvm::StringRef name) const {
    llvm::SmallString<128> p(path);
    llvm::sys::path::append(p, name);
    return std::string(p);
  }

private:
  llvm::SmallString<128> path;
};

std::string readAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

llvm::Expected<SafeTensorsFile> parseBytes(const std::string &bytes) {
  return SafeTensorsFile::parse(
      llvm::MemoryBuffer::getMemBufferCopy(bytes, "test"), "test");
}

/// A file made of an explicit header text and `dataBytes` zero bytes.
std::string rawFile(const std::string &header, size_t dataBytes) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[i] = static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xFF);
  return s + header + std::string(dataBytes, '\0');
}

std::string errorOf(llvm::Expected<SafeTensorsFile> f) {
  if (f)
    return "";
  return llvm::toString(f.takeError());
}
} // namespace

TEST(SafeTensors, WriteAndReadBack) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  const std::vector<float> a = {1.0f, -2.5f, 0.333f, 65504.0f, 1e-6f, 0.0f};
  const std::vector<float> b = {3.14159f, -1e30f, 7.0f, 0.1f};
  std::vector<SafeTensorToWrite> tensors;
  tensors.push_back(llvm::cantFail(makeSafeTensor("a.f16", "F16", {2, 3}, a)));
  tensors.push_back(llvm::cantFail(makeSafeTensor("b.f32", "F32", {4}, b)));
  tensors.push_back(llvm::cantFail(makeSafeTensor("c.bf16", "BF16", {1, 4}, b)));
  ASSERT_FALSE(static_cast<bool>(
      writeSafeTensors(path, tensors, {{"format", "pt"}})));
  const std::string bytes = readAll(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i)
    headerLen = (headerLen << 8) | uint8_t(bytes[i]);
  EXPECT_EQ(headerLen % 8, 0u); // header padded to 8 bytes
  EXPECT_EQ(bytes.size() - 8 - headerLen, 12u + 16u + 8u);

  llvm::Expected<SafeTensorsFile> f = SafeTensorsFile::open(path);
  ASSERT_TRUE(static_cast<bool>(f)) << llvm::toString(f.takeError());
  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const SafeTensorInfo *ia = f->find("a.f16");
  ASSERT_NE(ia, nullptr);
  EXPECT_EQ(ia->dtype, "F16");
  EXPECT_EQ(ia->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ia->numElements(), 6u);
  EXPECT_EQ(f->rawData(*ia).size(), 12u);
  EXPECT_EQ(f->find("missing"), nullptr);

  std::vector<float> ra = llvm::cantFail(f->readFloats("a.f16"));
  ASSERT_EQ(ra.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(ra[i], numerics::roundToHalf(a[i]));
  EXPECT_EQ(llvm::cantFail(f->readFloats("b.f32")), b);
  std::vector<float> rc = llvm::cantFail(f->readFloats("c.bf16"));
  for (size_t i = 0; i < b.size(); ++i)
    EXPECT_EQ(rc[i], numerics::bfloat16ToFloat(numerics::floatToBFloat16(b[i])));

  llvm::Expected<std::vector<float>> missing = f->readFloats("nope");
  ASSERT_FALSE(static_cast<bool>(missing));
  EXPECT_NE(llvm::toString(missing.takeError()).find("no tensor named"),
            std::string::npos);
}

TEST(SafeTensors, NonFloatDtype) {
  const std::string file = rawFile(
      R"({"i":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", 8);
  llvm::Expected<SafeTensorsFile> f = parseBytes(file);
  ASSERT_TRUE(static_cast<bool>(f)) << llvm::toString(f.takeError());
  llvm::Expected<std::vector<float>> v = f->readFloats("i");
  ASSERT_FALSE(static_cast<bool>(v));
  EXPECT_NE(llvm::toString(v.takeError()).find("not a float type"),
            std::string::npos);
}

TEST(SafeTensors, TruncatedFiles) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  const std::vector<float> a(64, 1.5f);
  ASSERT_FALSE(static_cast<bool>(writeSafeTensors(
      path, {llvm::cantFail(makeSafeTensor("a", "F32", {8, 8}, a))})));
  const std::string whole = readAll(path);
  ASSERT_TRUE(static_cast<bool>(parseBytes(whole)));
  // Every truncation is an error, never a crash.
  for (size_t len = 0; len < whole.size(); ++len) {
    const std::string err = errorOf(parseBytes(whole.substr(0, len)));
    ASSERT_NE(err, "") << "length " << len;
    ASSERT_NE(err.find("test: "), std::string::npos) << err;
  }
  EXPECT_NE(errorOf(parseBytes(whole.substr(0, 4))).find("too small"),
            std::string::npos);
  EXPECT_NE(errorOf(parseBytes(whole.substr(0, 20))).find("header length"),
            std::string::npos);
  EXPECT_NE(
      errorOf(parseBytes(whole.substr(0, whole.size() - 1))).find("truncated"),
      std::string::npos);
  // A missing file.
  EXPECT_NE(errorOf(SafeTensorsFile::open(dir.file("absent"))), "");
}

TEST(SafeTensors, CorruptHeaders) {
  const struct {
    std::string header;
    size_t data;
    const char *message;
  } cases[] = {
      {"{not json", 0, "invalid JSON"},
      {"[1, 2]", 0, "not an object"},
      {R"({"a": 3})", 0, "not a JSON object"},
      {R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4, "dtype"},
      {R"({"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})", 4,
       "unknown dtype"},
      {R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4, "shape"},
      {R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4,
       "non-negative"},
      {R"({"a":{"dtype":"F32","shape":[1]}})", 4, "data_offsets"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4,
       "begin <= end"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4,
       "need 8 bytes"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", 4,
       "past the end"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],)"
       R"("data_offsets":[0,4]}})",
       4, "too large"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
       8, "overlap"},
      {R"({"__metadata__":{"k":1}})", 0, "must be strings"},
  };
  for (const auto &c : cases) {
    const std::string err = errorOf(parseBytes(rawFile(c.header, c.data)));
    EXPECT_NE(err.find(c.message), std::string::npos)
        << c.header << " -> '" << err << "'";
  }
  // A huge header length is rejected before any allocation.
  std::string huge(8, '\xFF');
  EXPECT_NE(errorOf(parseBytes(huge + "{}")).find("header length"),
            std::string::npos);
}

TEST(SafeTensors, WriterRejectsBadInput) {
  TempDir dir;
  EXPECT_FALSE(static_cast<bool>(makeSafeTensor("x", "F32", {3}, {1.0f})));
  EXPECT_FALSE(static_cast<bool>(makeSafeTensor("x", "I8", {1}, {1.0f})));
  SafeTensorToWrite bad{"x", "F32", {2}, {0, 0, 0}};
  llvm::Error e = writeSafeTensors(dir.file("bad"), {bad});
  EXPECT_NE(llvm::toString(std::move(e)).find("does not match"),
            std::string::npos);
  SafeTensorToWrite ok{"x", "U8", {1}, {7}};
  e = writeSafeTensors(dir.file("dup"), {ok, ok});
  EXPECT_NE(llvm::toString(std::move(e)).find("duplicate"), std::string::npos);
}
