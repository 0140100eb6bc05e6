//===- TestUtil.h - Helpers of the runtime GoogleTests ----------*- C++ -*-===//

#ifndef KVC_RUNTIME_TEST_TESTUTIL_H
#define KVC_RUNTIME_TEST_TESTUTIL_H

#include "ModelDriver.h"
#include "kvc_runtime.h"
#include "kvc_runtime_binding.h"

#include "gtest/gtest.h"

#include <random>
#include <vector>

namespace kvc {
namespace rt {
namespace testing {

/// EXPECT / ASSERT a status; the runtime's message is printed on mismatch
/// (more can be streamed).
#define EXPECT_RT(expected, call)                                              \
  EXPECT_EQ((call), (expected)) << kvc_rt_last_error() << " "
#define ASSERT_RT_OK(call)                                                     \
  ASSERT_EQ((call), KVC_RT_OK) << kvc_rt_last_error() << " "

/// Owns a cache; destroyed (and checked) at scope exit.
class CacheHolder {
public:
  explicit CacheHolder(const kvc_rt_cache_config &config) {
    status_ = kvc_rt_cache_create(&config, &cache_);
    message_ = kvc_rt_last_error();
  }
  explicit CacheHolder(const ModelConfig &m) : CacheHolder(m.get()) {}
  ~CacheHolder() {
    if (cache_) {
      EXPECT_EQ(kvc_rt_cache_verify(cache_), KVC_RT_OK) << kvc_rt_last_error();
      EXPECT_EQ(kvc_rt_cache_destroy(cache_), KVC_RT_OK);
    }
  }
  kvc_rt_status status() const { return status_; }
  const std::string &message() const { return message_; }
  kvc_rt_cache *get() const { return cache_; }
  operator kvc_rt_cache *() const { return cache_; }

private:
  kvc_rt_cache *cache_ = nullptr;
  kvc_rt_status status_;
  std::string message_;
};

/// [H][n][D] random values (not fp16-rounded).
inline std::vector<float> randomTokens(size_t heads, size_t tokens,
                                       size_t dim, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::vector<float> v(heads * tokens * dim);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = normal(rng) * (1.0f + float(i % dim % 5));
  return v;
}

/// Tokens [first, first + count) of [H][n][D] arrays, in place (strides).
inline kvc_rt_tokens sliceTokens(const std::vector<float> &keys,
                                 const std::vector<float> &values,
                                 uint32_t heads, uint32_t total,
                                 uint32_t dim, uint32_t first,
                                 uint32_t count) {
  kvc_rt_tokens t{};
  t.keys = keys.data() + size_t{first} * dim;
  t.values = values.data() + size_t{first} * dim;
  t.num_tokens = count;
  t.dtype = KVC_RT_DTYPE_F32;
  t.kv_heads = heads;
  t.head_dim = dim;
  t.head_stride = uint64_t(total) * dim;
  t.token_stride = dim;
  return t;
}

/// A small single-layer CPU configuration.
inline ModelConfig simpleConfig(kvc_rt_encoding enc, uint32_t backend =
                                                         KVC_RT_BACKEND_CPU) {
  ModelConfig m;
  kvc_rt_config_init(&m.config);
  m.config.backend = backend;
  m.config.num_layers = 1;
  m.config.kv_heads = 2;
  m.config.head_dim = 64;
  m.config.page_tokens = 64;
  m.config.max_sequences = 4;
  m.config.max_tokens = 512;
  m.config.pages_per_layer = 24;
  m.encodings = {enc};
  m.name = "simple";
  return m;
}

inline kvc_rt_encoding kivi2(uint32_t residual = 64) {
  return makeEncoding(quantSide(2, KVC_RT_AXIS_CHANNEL, 32),
                      quantSide(2, KVC_RT_AXIS_TOKEN, 32), residual);
}

/// Creates `count` empty sequences in `cache` and binds them, in order, to
/// layer 0 (call under ASSERT_NO_FATAL_FAILURE).
inline void bindNewSequences(kvc_rt_cache *cache, kvc_rt_seq *seqs,
                             uint32_t count, kvc_rt_binding **binding) {
  for (uint32_t i = 0; i < count; ++i)
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seqs[i]));
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, seqs, count, binding));
}

} // namespace testing
} // namespace rt
} // namespace kvc

#endif // KVC_RUNTIME_TEST_TESTUTIL_H
