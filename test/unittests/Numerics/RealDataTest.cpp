//===- RealDataTest.cpp - Attention error on real tiny-lm Q/K/V -----------===//
//
// Teacher-forced causal attention over 1024 tokens of real post-RoPE Q/K/V
// (../shared/models/tiny-lm/qkv_layers.safetensors), per layer, under several
// decoupled encodings; relative error vs the fp16 cache over query positions
// >= 256. Skipped when the model data is absent (a bare clone must pass).
//
//===----------------------------------------------------------------------===//

#include "kvc/Numerics/Encoding.h"
#include "kvc/Numerics/ReferenceAttention.h"
#include "kvc/Support/SafeTensors.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include "gtest/gtest.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

using namespace kvc;
using namespace kvc::numerics;

namespace {
std::string qkvPath() {
  const char *env = std::getenv("KVC_SHARED_DIR");
  llvm::SmallString<256> p(env && *env ? env : KVC_DEFAULT_SHARED_DIR);
  llvm::sys::path::append(p, "models", "tiny-lm", "qkv_layers.safetensors");
  return std::string(p);
}

struct Config {
  const char *name;
  CacheEncoding enc;
};
} // namespace

TEST(RealData, TinyLmAttentionError) {
  const std::string path = qkvPath();
  if (!llvm::sys::fs::exists(path))
    GTEST_SKIP() << "model data not found at " << path
                 << " (set KVC_SHARED_DIR)";
  llvm::Expected<SafeTensorsFile> file = SafeTensorsFile::open(path);
  ASSERT_TRUE(static_cast<bool>(file)) << llvm::toString(file.takeError());

  const size_t numLayers = 6, hq = 8, hkv = 2, n = 1024, d = 64;
  const size_t firstScored = 256;
  const unsigned residual = 128;
  const auto ch = [](unsigned b) {
    return SideEncoding::quantized(b, QuantAxis::Channel, 32);
  };
  const auto tok = [](unsigned b) {
    return SideEncoding::quantized(b, QuantAxis::Token, 32);
  };
  const Config configs[] = {
      {"KIVI-2 (K2 ch, V2 tok)", {ch(2), tok(2), residual}},
      {"K2 tok, V2 tok", {tok(2), tok(2), residual}},
      {"K4 ch, V4 tok", {ch(4), tok(4), residual}},
      {"K4 ch, V2 tok", {ch(4), tok(2), residual}},
      {"K2 ch, V4 tok", {ch(2), tok(4), residual}},
  };
  const size_t numConfigs = sizeof(configs) / sizeof(configs[0]);
  AttentionOptions opts;
  opts.scale = 0.125;
  opts.causal = true;

  // errors[layer][config]; layers run two at a time (the machine has 2
  // cores; each computation is independent and deterministic).
  std::vector<std::vector<double>> errors(numLayers,
                                          std::vector<double>(numConfigs));
  std::vector<std::string> loadErrors(numLayers);
  auto runLayer = [&](size_t layer) {
    const std::string prefix = "layer" + std::to_string(layer) + ".";
    llvm::Expected<std::vector<float>> q = file->readFloats(prefix + "q");
    llvm::Expected<std::vector<float>> k = file->readFloats(prefix + "k");
    llvm::Expected<std::vector<float>> v = file->readFloats(prefix + "v");
    if (!q || !k || !v) {
      loadErrors[layer] = "cannot read " + prefix + "{q,k,v}";
      llvm::consumeError(q.takeError());
      llvm::consumeError(k.takeError());
      llvm::consumeError(v.takeError());
      return;
    }
    if (q->size() != hq * n * d || k->size() != hkv * n * d ||
        v->size() != hkv * n * d) {
      loadErrors[layer] = "unexpected shapes for " + prefix + "{q,k,v}";
      return;
    }
    const CacheEncoding fp16{SideEncoding::plain(), SideEncoding::plain(),
                             residual};
    const std::vector<double> ref = teacherForcedAttention(
        q->data(), k->data(), v->data(), hq, hkv, n, d, fp16, opts,
        firstScored);
    for (size_t c = 0; c < numConfigs; ++c)
      errors[layer][c] = relativeError(
          teacherForcedAttention(q->data(), k->data(), v->data(), hq, hkv, n,
                                 d, configs[c].enc, opts, firstScored),
          ref);
  };
  for (size_t l = 0; l < numLayers; l += 2) {
    std::thread second(runLayer, l + 1);
    runLayer(l);
    second.join();
  }
  for (const std::string &e : loadErrors)
    ASSERT_TRUE(e.empty()) << e;

  // The table.
  std::printf("\nRelative attention error ||O_enc - O_fp16||_F / ||O_fp16||_F"
              "\n(tiny-lm, teacher forcing over 1024 tokens, positions >= 256,"
              " G=32, R=128)\n");
  std::printf("%-24s", "encoding");
  for (size_t l = 0; l < numLayers; ++l)
    std::printf("  layer%zu", l);
  std::printf("    mean\n");
  std::vector<double> mean(numConfigs, 0.0);
  for (size_t c = 0; c < numConfigs; ++c) {
    std::printf("%-24s", configs[c].name);
    for (size_t l = 0; l < numLayers; ++l) {
      std::printf("  %6.4f", errors[l][c]);
      mean[c] += errors[l][c] / numLayers;
    }
    std::printf("  %6.4f\n", mean[c]);
  }
  std::fflush(stdout);

  // Keys per channel beat keys per token at equal bits, in every layer.
  for (size_t l = 0; l < numLayers; ++l)
    EXPECT_LT(errors[l][0], errors[l][1]) << "layer " << l;
  // An independent fp64 implementation measured means of ~0.154 (KIVI-2) and
  // ~0.210 (both per token).
  EXPECT_NEAR(mean[0], 0.154, 0.01);
  EXPECT_NEAR(mean[1], 0.210, 0.01);
  // Two more bits on either side help; on both sides most. (Which side
  // profits more is not asserted: on this attention-output metric K2/V4 beats
  // K4/V2, while DESIGN.md reports end-to-end bits/byte favouring K4/V2.)
  EXPECT_LT(mean[2], mean[3]);
  EXPECT_LT(mean[2], mean[4]);
  EXPECT_LT(mean[3], mean[0]);
  EXPECT_LT(mean[4], mean[0]);
}
