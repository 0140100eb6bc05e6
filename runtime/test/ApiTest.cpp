//===- ApiTest.cpp - Configuration, handles and errors of the C API -------===//

#include "TestUtil.h"

#include <cstring>
#include <string>
#include <thread>

using namespace kvc::rt::testing;

namespace {
std::string lastError() { return kvc_rt_last_error(); }
} // namespace

TEST(RuntimeApi, VersionsAndNames) {
  EXPECT_EQ(kvc_rt_abi_version(), uint32_t(KVC_RT_ABI_VERSION));
  EXPECT_STREQ(kvc_rt_status_name(KVC_RT_OK), "KVC_RT_OK");
  EXPECT_STREQ(kvc_rt_status_name(KVC_RT_ERROR_OUT_OF_MEMORY),
               "KVC_RT_ERROR_OUT_OF_MEMORY");
  EXPECT_STREQ(kvc_rt_status_name(static_cast<kvc_rt_status>(999)),
               "KVC_RT_UNKNOWN_STATUS");
}

TEST(RuntimeApi, ConfigInitDefaults) {
  kvc_rt_cache_config c;
  std::memset(&c, 0xAB, sizeof(c));
  ASSERT_RT_OK(kvc_rt_config_init(&c));
  EXPECT_EQ(c.backend, uint32_t(KVC_RT_BACKEND_CPU));
  EXPECT_EQ(c.page_tokens, uint32_t(KVC_RT_DEFAULT_PAGE_TOKENS));
  EXPECT_EQ(c.num_layers, 0u);
  EXPECT_EQ(c.encodings, nullptr);
  EXPECT_EQ(c.encodings_per_layer, 1u);
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_config_init(nullptr));
  EXPECT_NE(lastError().find("config"), std::string::npos);
}

TEST(RuntimeApi, EncodingValidationNamesTheRule) {
  struct Case {
    kvc_rt_encoding enc;
    uint32_t headDim, pageTokens;
    const char *fragment;
  };
  const uint32_t CH = KVC_RT_AXIS_CHANNEL, TOK = KVC_RT_AXIS_TOKEN;
  const Case bad[] = {
      {makeEncoding(quantSide(5, CH, 32), fp16Side(), 64), 64, 64, "bits"},
      {makeEncoding(quantSide(2, CH, 48), fp16Side(), 96), 64, 96, "32"},
      {makeEncoding(quantSide(2, CH, 32), fp16Side(), 0), 64, 64,
       "residual window"},
      {makeEncoding(quantSide(2, CH, 64), fp16Side(), 96), 64, 64,
       "multiple of the channel-axis group"},
      {makeEncoding(fp16Side(), quantSide(2, TOK, 64), 64), 96, 64,
       "divide head_dim"},
      {makeEncoding(kivi2().key, kivi2().value, 64), 64, 48, "page tokens"},
      {makeEncoding(quantSide(2, CH, 64), fp16Side(), 64), 64, 96,
       "key: channel-axis group (64) must divide the token count (96)"},
      {makeEncoding(quantSide(2, 7, 32), fp16Side(), 64), 64, 64, "axis"},
      {makeEncoding(fp8Side(9), fp16Side(), 64), 64, 64, "fp8 format"},
  };
  for (const Case &c : bad) {
    EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
              kvc_rt_encoding_validate(&c.enc, c.headDim, c.pageTokens));
    EXPECT_NE(lastError().find(c.fragment), std::string::npos)
        << lastError() << " should mention '" << c.fragment << "'";
  }
  // Unused fields must be 0, so a forgotten `kind` is caught.
  kvc_rt_encoding forgotKind = makeEncoding(fp16Side(), fp16Side(), 0);
  forgotKind.key.bits = 4;
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_encoding_validate(&forgotKind, 64, 64));
  EXPECT_NE(lastError().find("key: bits must be 0"), std::string::npos);
  kvc_rt_encoding unknownKind = kivi2();
  unknownKind.value.kind = 3;
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_encoding_validate(&unknownKind, 64, 64));
  EXPECT_NE(lastError().find("value:"), std::string::npos);

  const kvc_rt_encoding good = kivi2();
  EXPECT_RT(KVC_RT_OK, kvc_rt_encoding_validate(&good, 128, 64));
  EXPECT_EQ(lastError(), "");
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_encoding_validate(nullptr, 1, 1));
}

TEST(RuntimeApi, ConfigValidation) {
  ModelConfig m = simpleConfig(kivi2());
  kvc_rt_cache_config c = m.get();
  ASSERT_RT_OK(kvc_rt_config_validate(&c));

  auto expectInvalid = [&](kvc_rt_cache_config bad, const char *fragment) {
    EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT, kvc_rt_config_validate(&bad));
    EXPECT_NE(lastError().find(fragment), std::string::npos) << lastError();
    kvc_rt_cache *cache = reinterpret_cast<kvc_rt_cache *>(0x1);
    EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT, kvc_rt_cache_create(&bad, &cache));
    EXPECT_EQ(cache, reinterpret_cast<kvc_rt_cache *>(0x1))
        << "a failed create must not write its output";
  };
  kvc_rt_cache_config bad = c;
  bad.num_layers = 0;
  expectInvalid(bad, "num_layers");
  bad = c;
  bad.max_tokens = 0;
  expectInvalid(bad, "max_tokens");
  bad = c;
  bad.pages_per_layer = 0;
  expectInvalid(bad, "pages_per_layer");
  bad = c;
  bad.page_tokens = 80;
  expectInvalid(bad, "layer 0");
  bad = c;
  bad.backend = 17;
  expectInvalid(bad, "backend");
  bad = c;
  bad.pages_per_layer = 0x80000000u;
  expectInvalid(bad, "2^31");
  bad = c;
  bad.max_sequences = 0xFFFFFFFFu;
  bad.max_tokens = 0xFFFFFFFFu;
  bad.page_tokens = 32;
  bad.pages_per_layer = 0x7FFFFFFFu;
  kvc_rt_footprint f;
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT, kvc_rt_config_footprint(&bad, &f));
  bad = c;
  bad.encodings = nullptr;
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_config_validate(&bad));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_config_validate(nullptr));
}

TEST(RuntimeApi, CreateDestroyAndInvalidHandles) {
  ModelConfig m = simpleConfig(kivi2());
  kvc_rt_cache_config c = m.get();
  kvc_rt_cache *cache = nullptr;
  ASSERT_RT_OK(kvc_rt_cache_create(&c, &cache));
  ASSERT_NE(cache, nullptr);
  ASSERT_RT_OK(kvc_rt_cache_verify(cache));
  ASSERT_RT_OK(kvc_rt_cache_destroy(cache));
  // The pointer is dead now: every entry point says so instead of crashing.
  kvc_rt_seq seq;
  EXPECT_RT(KVC_RT_ERROR_INVALID_HANDLE, kvc_rt_cache_destroy(cache));
  EXPECT_RT(KVC_RT_ERROR_INVALID_HANDLE, kvc_rt_sequence_create(cache, &seq));
  EXPECT_RT(KVC_RT_ERROR_INVALID_HANDLE, kvc_rt_cache_verify(cache));
  EXPECT_STREQ(kvc_rt_cache_last_error(cache), "invalid kvc_rt_cache handle");
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_cache_destroy(nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_cache_create(&c, nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_cache_create(nullptr, &cache));
}

TEST(RuntimeApi, NullOutputsAreErrors) {
  CacheHolder cache(simpleConfig(kivi2()));
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_sequence_create(cache, nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_sequence_fork(cache, seq, nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_sequence_length(cache, seq, 0, nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_append(cache, seq, 0, nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_layer_view_get(cache, 0, nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_sequence_view_get(cache, seq, 0, nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_cache_stats_get(cache, nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_layer_stats_get(cache, 0, nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_cache_get_config(cache, nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_cache_stream(cache, nullptr));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_read_block(cache, 0, 0, 0, KVC_RT_POOL_K, nullptr, 1 << 20));
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER,
            kvc_rt_cache_check_layer(cache, 0, nullptr, 2, 64, 64));
  // The cache remembers the last failure; the thread-local error is reset
  // by the next successful call.
  EXPECT_NE(std::string(kvc_rt_cache_last_error(cache)).find("encoding"),
            std::string::npos);
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, seq));
  EXPECT_EQ(lastError(), "");
}

TEST(RuntimeApi, LastErrorIsPerThread) {
  EXPECT_RT(KVC_RT_ERROR_NULL_POINTER, kvc_rt_config_init(nullptr));
  const std::string mine = lastError();
  std::string other = "unset";
  std::thread t([&] {
    kvc_rt_cache_config c;
    kvc_rt_config_init(&c);
    other = kvc_rt_last_error();
  });
  t.join();
  EXPECT_EQ(other, "");
  EXPECT_EQ(lastError(), mine);
}

TEST(RuntimeApi, SequenceIdsAreNeverReused) {
  CacheHolder cache(simpleConfig(kivi2()));
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq a, b;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &a));
  EXPECT_NE(a, KVC_RT_SEQ_INVALID);
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, a));
  EXPECT_RT(KVC_RT_ERROR_INVALID_SEQUENCE, kvc_rt_sequence_free(cache, a));
  EXPECT_NE(lastError().find("not a live sequence"), std::string::npos);
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &b)); // same slot, new id
  EXPECT_NE(a, b);
  EXPECT_RT(KVC_RT_ERROR_INVALID_SEQUENCE, kvc_rt_sequence_free(cache, a));
  uint64_t n;
  ASSERT_RT_OK(kvc_rt_sequence_length(cache, b, 0, &n));
  EXPECT_EQ(n, 0u);
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_sequence_length(cache, b, 1, &n));
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, b));
}

TEST(RuntimeApi, SequenceSlotsRunOut) {
  ModelConfig m = simpleConfig(kivi2());
  m.config.max_sequences = 3;
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq s[3], extra = 12345;
  for (kvc_rt_seq &id : s)
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &id));
  EXPECT_RT(KVC_RT_ERROR_CAPACITY_EXCEEDED,
            kvc_rt_sequence_create(cache, &extra));
  EXPECT_EQ(extra, 12345u);
  EXPECT_RT(KVC_RT_ERROR_CAPACITY_EXCEEDED,
            kvc_rt_sequence_fork(cache, s[0], &extra));
  EXPECT_NE(lastError().find("max_sequences"), std::string::npos);
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, s[1]));
  ASSERT_RT_OK(kvc_rt_sequence_fork(cache, s[0], &extra));
  for (kvc_rt_seq id : {s[0], s[2], extra})
    ASSERT_RT_OK(kvc_rt_sequence_free(cache, id));
}

TEST(RuntimeApi, CheckLayer) {
  ModelConfig m = simpleConfig(kivi2());
  m.config.num_layers = 2;
  m.encodings.push_back(
      makeEncoding(fp8Side(KVC_RT_FP8_E4M3), fp16Side(), 0));
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  const kvc_rt_encoding k2 = kivi2();
  ASSERT_RT_OK(kvc_rt_cache_check_layer(cache, 0, &k2, 2, 64, 64));
  EXPECT_RT(KVC_RT_ERROR_ENCODING_MISMATCH,
            kvc_rt_cache_check_layer(cache, 1, &k2, 2, 64, 64));
  EXPECT_NE(lastError().find("fp8<e4m3>"), std::string::npos) << lastError();
  EXPECT_RT(KVC_RT_ERROR_ENCODING_MISMATCH,
            kvc_rt_cache_check_layer(cache, 0, &k2, 2, 64, 128));
  EXPECT_RT(KVC_RT_ERROR_SHAPE_MISMATCH,
            kvc_rt_cache_check_layer(cache, 0, &k2, 4, 64, 64));
  EXPECT_RT(KVC_RT_ERROR_SHAPE_MISMATCH,
            kvc_rt_cache_check_layer(cache, 0, &k2, 2, 128, 64));
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT,
            kvc_rt_cache_check_layer(cache, 2, &k2, 2, 64, 64));
  const kvc_rt_encoding other = kivi2(128);
  EXPECT_RT(KVC_RT_ERROR_ENCODING_MISMATCH,
            kvc_rt_cache_check_layer(cache, 0, &other, 2, 64, 64));

  kvc_rt_cache_config got;
  ASSERT_RT_OK(kvc_rt_cache_get_config(cache, &got));
  EXPECT_EQ(got.num_layers, 2u);
  EXPECT_EQ(got.encodings[1].key.kind, uint32_t(KVC_RT_SIDE_FP8));
  EXPECT_NE(got.encodings, m.encodings.data()) << "the cache keeps a copy";
  void *stream = reinterpret_cast<void *>(0x1);
  ASSERT_RT_OK(kvc_rt_cache_stream(cache, &stream));
  EXPECT_EQ(stream, nullptr);
  ASSERT_RT_OK(kvc_rt_cache_synchronize(cache));
}

TEST(RuntimeApi, CudaBackendAvailability) {
  EXPECT_RT(KVC_RT_OK, kvc_rt_backend_available(KVC_RT_BACKEND_CPU, 0));
  EXPECT_RT(KVC_RT_ERROR_INVALID_ARGUMENT, kvc_rt_backend_available(42, 0));
  const kvc_rt_status cuda = kvc_rt_backend_available(KVC_RT_BACKEND_CUDA, 0);
  if (cuda == KVC_RT_OK) {
    EXPECT_RT(KVC_RT_ERROR_UNSUPPORTED,
              kvc_rt_backend_available(KVC_RT_BACKEND_CUDA, 1 << 20));
    GTEST_SKIP() << "a CUDA device is present; kvc_runtime_cuda_test covers it";
  }
  EXPECT_EQ(cuda, KVC_RT_ERROR_UNSUPPORTED);
  EXPECT_FALSE(lastError().empty());
  // Creating a cache on an unavailable backend fails cleanly.
  ModelConfig m = simpleConfig(kivi2(), KVC_RT_BACKEND_CUDA);
  kvc_rt_cache_config c = m.get();
  kvc_rt_cache *cache = nullptr;
  EXPECT_RT(KVC_RT_ERROR_UNSUPPORTED, kvc_rt_cache_create(&c, &cache));
  EXPECT_EQ(cache, nullptr);
}

TEST(RuntimeApi, DifferentCachesOnDifferentThreads) {
  // Each thread owns its cache; the only shared state is the handle
  // registry, and each thread's last error is its own.
  auto work = [](unsigned seed, std::string *error) {
    ModelDriver driver;
    *error = driver.init(preset(seed % numPresets(), KVC_RT_BACKEND_CPU));
    RandomChoices choices(seed);
    for (int i = 0; i < 3000 && error->empty(); ++i)
      *error = driver.step(choices);
    if (error->empty())
      *error = driver.finish();
  };
  std::string e1, e2, e3;
  std::thread t1(work, 1u, &e1), t2(work, 2u, &e2), t3(work, 3u, &e3);
  t1.join();
  t2.join();
  t3.join();
  EXPECT_EQ(e1, "");
  EXPECT_EQ(e2, "");
  EXPECT_EQ(e3, "");
}
