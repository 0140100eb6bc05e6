//===- StepTokens.cpp - kvc-run: the new tokens of each decode step -------===//

#include "StepTokens.h"

#include "kvc/Support/SafeTensors.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <random>

using namespace kvc::run;

namespace {

class RandomTokens final : public StepTokens {
public:
  RandomTokens(const StepTokenShape &shape, unsigned seed)
      : shape(shape), seed(seed), rng(seed), channelScale(shape.headDim, 1.0f) {
    for (int64_t c = 0; c < shape.headDim; c += 16)
      channelScale[c] = 8.0f;
  }

  void fill(unsigned, float *q, float *k, float *v) override {
    const int64_t d = shape.headDim;
    for (int64_t i = 0; i < shape.batch * shape.queryHeads * d; ++i)
      q[i] = normal(rng);
    // Each key then its value, channel by channel (the draw order fixes
    // what a --seed reproduces).
    for (int64_t i = 0; i < shape.batch * shape.kvHeads; ++i)
      for (int64_t c = 0; c < d; ++c) {
        k[i * d + c] = normal(rng) * channelScale[c];
        v[i * d + c] = normal(rng);
      }
  }

  std::string describe() const override {
    return llvm::formatv("random (seed {0})", seed).str();
  }

private:
  StepTokenShape shape;
  unsigned seed;
  std::mt19937 rng;
  std::normal_distribution<float> normal{0.0f, 1.0f};
  std::vector<float> channelScale;
};

class RecordedTokens final : public StepTokens {
public:
  RecordedTokens(const StepTokenShape &shape, std::string origin,
                 int64_t tokens, std::vector<float> q, std::vector<float> k,
                 std::vector<float> v)
      : shape(shape), origin(std::move(origin)), tokens(tokens),
        window(tokens / shape.batch), q(std::move(q)), k(std::move(k)),
        v(std::move(v)) {}

  void fill(unsigned step, float *qOut, float *kOut, float *vOut) override {
    const int64_t d = shape.headDim;
    for (int64_t b = 0; b < shape.batch; ++b) {
      const int64_t token = b * window + step;
      auto copyRows = [&](const std::vector<float> &from, int64_t heads,
                          float *to) {
        for (int64_t h = 0; h < heads; ++h)
          std::copy_n(&from[(h * tokens + token) * d], d,
                      &to[(b * heads + h) * d]);
      };
      copyRows(q, shape.queryHeads, qOut);
      copyRows(k, shape.kvHeads, kOut);
      copyRows(v, shape.kvHeads, vOut);
    }
  }

  std::string describe() const override { return origin; }

private:
  StepTokenShape shape;
  std::string origin;
  int64_t tokens, window;
  std::vector<float> q, k, v;
};

} // namespace

std::unique_ptr<StepTokens> StepTokens::random(const StepTokenShape &shape,
                                               unsigned seed) {
  return std::make_unique<RandomTokens>(shape, seed);
}

llvm::Expected<std::unique_ptr<StepTokens>>
StepTokens::recorded(llvm::StringRef path, llvm::StringRef prefix,
                     const StepTokenShape &shape, unsigned steps) {
  auto file = SafeTensorsFile::open(path);
  if (!file)
    return file.takeError();
  auto problem = [&](const llvm::Twine &message) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   path + ": " + message);
  };
  // Every tensor [heads][T][headDim], one T for all three.
  int64_t tokens = -1;
  std::vector<float> data[3];
  const char *names[3] = {"q", "k", "v"};
  for (int i = 0; i < 3; ++i) {
    std::string name = (prefix + names[i]).str();
    const SafeTensorInfo *info = file->find(name);
    if (!info)
      return problem("no tensor '" + name + "'");
    const int64_t heads = i == 0 ? shape.queryHeads : shape.kvHeads;
    const std::vector<int64_t> &dims = info->shape;
    if (dims.size() != 3 || dims[0] != heads || dims[2] != shape.headDim ||
        dims[1] < 1 || (tokens >= 0 && dims[1] != tokens))
      return problem(llvm::formatv(
          "'{0}' has shape [{1}], the step needs [{2}, {3}, {4}]", name,
          llvm::join(llvm::map_range(
                         dims, [](int64_t x) { return std::to_string(x); }),
                     ", "),
          heads, tokens >= 0 ? std::to_string(tokens) : "tokens",
          shape.headDim));
    tokens = dims[1];
    auto floats = file->readFloats(name);
    if (!floats)
      return floats.takeError();
    data[i] = std::move(*floats);
  }
  if (int64_t(steps) > tokens / shape.batch)
    return problem(llvm::formatv(
        "{0} tokens give each of the {1} sequences {2} steps, not {3}", tokens,
        shape.batch, tokens / shape.batch, steps));
  std::string origin =
      llvm::formatv("recorded '{0}q', '{0}k', '{0}v' of {1} ({2} tokens)",
                    prefix, llvm::sys::path::filename(path), tokens)
          .str();
  return std::make_unique<RecordedTokens>(
      shape, std::move(origin), tokens, std::move(data[0]), std::move(data[1]),
      std::move(data[2]));
}

llvm::Expected<std::unique_ptr<StepTokens>>
StepTokens::create(llvm::StringRef qkvPath, llvm::StringRef prefix,
                   std::optional<unsigned> seed, const StepTokenShape &shape,
                   unsigned steps) {
  auto error = [](const llvm::Twine &message) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
  };
  if (qkvPath.empty()) {
    if (!prefix.empty())
      return error("--qkv-prefix needs --qkv");
    return random(shape, seed.value_or(0) ? *seed : std::random_device{}());
  }
  if (seed)
    return error("--seed picks random tokens: it does not apply with --qkv");
  auto tokens = recorded(qkvPath, prefix, shape, steps);
  if (!tokens)
    return error("--qkv: " + llvm::toString(tokens.takeError()));
  return tokens;
}
