//===- StatsTest.cpp - Loading calibration statistics, good and bad -------===//

#include "kvc/CostModel/Stats.h"

#include "kvc/Support/SafeTensors.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <cmath>

using namespace kvc;
using namespace kvc::cost;

namespace {
class StatsFileTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("kvc-stats", dir));
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }

  /// A tensor of `shape` with small distinct values.
  static SafeTensorToWrite tensor(const std::string &name,
                                  std::vector<int64_t> shape,
                                  const char *dtype = "F16") {
    size_t n = 1;
    for (int64_t d : shape)
      n *= size_t(d);
    std::vector<float> data(n);
    for (size_t i = 0; i < n; ++i)
      data[i] = float(int(i % 17) - 8) / 8.0f;
    return cantFail(makeSafeTensor(name, dtype, shape, data));
  }
  /// Layer L with Hq=4, Hkv=2, T=64, D=32.
  static void addLayer(std::vector<SafeTensorToWrite> &t, unsigned l,
                       int64_t tokens = 64) {
    const std::string p = "layer" + std::to_string(l) + ".";
    t.push_back(tensor(p + "q", {4, tokens, 32}));
    t.push_back(tensor(p + "k", {2, tokens, 32}, "F32"));
    t.push_back(tensor(p + "v", {2, tokens, 32}));
  }
  std::string write(const std::vector<SafeTensorToWrite> &tensors,
                    const std::map<std::string, std::string> &meta = {}) {
    llvm::SmallString<128> path(dir);
    llvm::sys::path::append(path, "stats" + std::to_string(count++) +
                                      ".safetensors");
    EXPECT_FALSE(static_cast<bool>(writeSafeTensors(path, tensors, meta)));
    return std::string(path);
  }
  /// The error message of loading `path` (the test fails if it loads).
  static std::string loadError(const std::string &path) {
    llvm::Expected<CalibrationStats> s = loadStats(path);
    if (s) {
      ADD_FAILURE() << path << " loaded";
      return "";
    }
    return llvm::toString(s.takeError());
  }

  llvm::SmallString<128> dir;
  int count = 0;
};
} // namespace

TEST_F(StatsFileTest, LoadsLayersAndCalibration) {
  std::vector<SafeTensorToWrite> t;
  addLayer(t, 0);
  addLayer(t, 3);
  const std::string path = write(
      t, {{"kvc.stats.version", "1"},
          {"kvc.stats.score_from", "16"},
          {"kvc.calib.layer0.key.encoding", "q2:channel:g32"},
          {"kvc.calib.layer0.key.dloss", "0.0123"},
          {"kvc.calib.layer3.value.encoding", "q2:token:g32"},
          {"kvc.calib.layer3.value.dloss", "4e-3"},
          {"unrelated", "ignored"}});
  llvm::Expected<CalibrationStats> s = loadStats(path);
  ASSERT_TRUE(static_cast<bool>(s)) << llvm::toString(s.takeError());
  EXPECT_EQ(s->scoreFrom, 16u);
  ASSERT_EQ(s->layers.size(), 2u);
  const LayerStats *l0 = s->find(0), *l3 = s->find(3);
  ASSERT_TRUE(l0 && l3);
  EXPECT_EQ(s->find(1), nullptr);
  EXPECT_EQ(l0->numQueryHeads, 4u);
  EXPECT_EQ(l0->numKVHeads, 2u);
  EXPECT_EQ(l0->numTokens, 64u);
  EXPECT_EQ(l0->headDim, 32u);
  EXPECT_EQ(l0->queries.size(), 4u * 64 * 32);
  EXPECT_EQ(l0->keys[1], -7.0f / 8.0f);
  ASSERT_TRUE(l0->keyCalibration.has_value());
  EXPECT_EQ(l0->keyCalibration->encoding.toString(), "q2:channel:g32");
  EXPECT_DOUBLE_EQ(l0->keyCalibration->dloss, 0.0123);
  EXPECT_FALSE(l0->valueCalibration.has_value());
  EXPECT_DOUBLE_EQ(l3->valueCalibration->dloss, 4e-3);
  EXPECT_FALSE(s->isFullyCalibrated());
}

TEST_F(StatsFileTest, DefaultsWithoutMetadata) {
  std::vector<SafeTensorToWrite> t;
  addLayer(t, 0, 300);
  llvm::Expected<CalibrationStats> s = loadStats(write(t));
  ASSERT_TRUE(static_cast<bool>(s)) << llvm::toString(s.takeError());
  EXPECT_EQ(s->scoreFrom, kDefaultScoreFrom);
}

TEST_F(StatsFileTest, BadFilesNameFileAndProblem) {
  auto expectError = [&](const std::string &path, const std::string &what) {
    const std::string message = loadError(path);
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  };
  {
    std::vector<SafeTensorToWrite> t;
    addLayer(t, 0);
    t.erase(t.begin() + 2); // no layer0.v
    expectError(write(t), "layer 0 has no tensor 'layer0.v'");
  }
  {
    std::vector<SafeTensorToWrite> t = {tensor("weights", {4, 4})};
    expectError(write(t), "no layer{L}.q/k/v tensors");
  }
  {
    std::vector<SafeTensorToWrite> t;
    addLayer(t, 0);
    t[1] = tensor("layer0.k", {2, 64});
    expectError(write(t), "tensor 'layer0.k' must have rank 3");
  }
  {
    std::vector<SafeTensorToWrite> t;
    addLayer(t, 0);
    t[0] = tensor("layer0.q", {3, 64, 32});
    expectError(write(t), "query heads (3) must be a positive multiple of kv "
                          "heads (2)");
  }
  {
    std::vector<SafeTensorToWrite> t;
    addLayer(t, 0);
    t[0] = tensor("layer0.q", {4, 64, 16});
    expectError(write(t), "q and k disagree on tokens or head_dim");
  }
  {
    std::vector<SafeTensorToWrite> t;
    addLayer(t, 0);
    t[2] = tensor("layer0.v", {2, 32, 32});
    expectError(write(t), "k and v shapes differ");
  }
  std::vector<SafeTensorToWrite> good;
  addLayer(good, 0);
  expectError(write(good, {{"kvc.stats.version", "2"}}),
              "unsupported kvc.stats.version '2'");
  expectError(write(good, {{"kvc.stats.score_from", "ten"}}),
              "kvc.stats.score_from = 'ten' is not a non-negative integer");
  expectError(write(good, {{"kvc.stats.score_from", "64"}}),
              "leaves no scored query in layer 0 of 64 tokens");
  expectError(write(good, {{"kvc.calib.layer0.key.encoding", "q2:token:g32"}}),
              "must be given together");
  expectError(write(good, {{"kvc.calib.layer0.value.encoding", "q9:token:g32"},
                           {"kvc.calib.layer0.value.dloss", "0.1"}}),
              "bad encoding 'q9:token:g32'");
  expectError(write(good, {{"kvc.calib.layer0.key.encoding", "q2:token:g32"},
                           {"kvc.calib.layer0.key.dloss", "-0.5"}}),
              "'kvc.calib.layer0.key.dloss' = '-0.5' is not a finite number");
  expectError(write(good, {{"kvc.calib.layer0.key.encoding", "q2:token:g32"},
                           {"kvc.calib.layer0.key.dloss", "nan"}}),
              "is not a finite number");
  {
    std::vector<SafeTensorToWrite> t;
    addLayer(t, 0);
    std::vector<float> nan(2 * 64 * 32, NAN);
    t[1] = cantFail(makeSafeTensor("layer0.k", "F32", {2, 64, 32}, nan));
    expectError(write(t), "tensor 'layer0.k' holds NaN or Inf");
  }
  // Not a safetensors file at all, and a missing file.
  llvm::SmallString<128> junk(dir);
  llvm::sys::path::append(junk, "junk.safetensors");
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(junk, ec);
    os << "this is not a safetensors file";
  }
  EXPECT_NE(loadError(std::string(junk)).find(std::string(junk)),
            std::string::npos);
  EXPECT_NE(loadError(std::string(dir) + "/missing.safetensors")
                .find("missing.safetensors"),
            std::string::npos);
}
