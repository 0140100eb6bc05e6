//===- ApiFuzzer.cpp - libFuzzer target over C API call sequences ---------===//
//
// The input bytes choose a configuration (preset, backend, per-head
// encodings, pool and slot counts) and then every decision of the model driver: which operation,
// which sequence and layer, how many tokens, their values (including NaN,
// Inf and fp16 overflow), eviction policies and scores, and which invalid
// call to try. After every
// operation the runtime's own invariant check must pass; the model
// comparison runs after each step and in full at the end. Any mismatch
// aborts, which libFuzzer reports as a crash with the input that caused it.
//
//===----------------------------------------------------------------------===//

#include "ModelDriver.h"

#include <cstdio>
#include <cstdlib>

using namespace kvc::rt::testing;

namespace {
[[noreturn]] void fail(const std::string &what) {
  std::fprintf(stderr, "kvc runtime fuzz: %s\n", what.c_str());
  std::abort();
}
constexpr int kMaxSteps = 160;
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3)
    return 0;
  ByteChoices choices(data, size);
  ModelConfig config =
      preset(choices.below(static_cast<uint32_t>(numPresets())),
             choices.below(2) ? KVC_RT_BACKEND_CPU_STAGED : KVC_RT_BACKEND_CPU);
  if (choices.below(4) == 0)
    randomizeHeadEncodings(config, choices); // any mix of per-head encodings
  config.config.pages_per_layer = 1 + choices.below(24);
  config.config.max_sequences = 1 + choices.below(8);

  ModelDriver driver;
  std::string err = driver.init(config);
  if (!err.empty())
    fail(err);
  for (int i = 0; i < kMaxSteps && !choices.exhausted(); ++i) {
    err = driver.step(choices);
    if (err.empty() && kvc_rt_cache_verify(driver.cache()) != KVC_RT_OK)
      err = std::string("verify: ") + kvc_rt_last_error();
    if (!err.empty())
      fail("step " + std::to_string(i) + " of " + config.name + ": " + err);
  }
  err = driver.checkAll();
  if (err.empty())
    err = driver.finish();
  if (!err.empty())
    fail(config.name + ": " + err);
  return 0;
}
