//===- BindingTest.cpp - the entry points of compiled code ----------------===//
//
// kvc_runtime_binding.h: what kvc-compiled CPU code sees. Errors are sticky
// (recorded in the binding, later calls do nothing), since compiled code
// cannot return them; the data paths are exercised end to end by kvc-run.
//
//===----------------------------------------------------------------------===//

#include "ModelDriver.h"
#include "TestUtil.h"
#include "kvc/Numerics/Half.h"
#include "kvc_runtime_binding.h"

#include <gtest/gtest.h>

using namespace kvc::rt::testing;

namespace {

/// [batch][heads][tokens][64] f32 tokens as a memref descriptor.
struct Tokens {
  std::vector<float> data;
  kvc_rt_memref_4d_f32 desc;
  Tokens(int64_t batch, int64_t heads, int64_t tokens, unsigned seed)
      : data(randomTokens(batch * heads, tokens, 64, seed)) {
    desc.allocated = desc.aligned = data.data();
    desc.offset = 0;
    int64_t sizes[4] = {batch, heads, tokens, 64};
    int64_t strides[4] = {heads * tokens * 64, tokens * 64, 64, 1};
    for (int i = 0; i < 4; ++i) {
      desc.sizes[i] = sizes[i];
      desc.strides[i] = strides[i];
    }
  }
};

/// A KIVI-2 cache (2 heads of 64, 64-token pages, R = 64, at most 512
/// tokens) with one sequence bound to compiled code.
class BoundSequence : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_RT_OK(cache.status());
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
    ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, &seq, 1, &binding));
  }
  void TearDown() override { kvc_rt_binding_destroy(binding); }

  CacheHolder cache{simpleConfig(kivi2())};
  kvc_rt_seq seq = 0;
  kvc_rt_binding *binding = nullptr;
};

} // namespace

TEST(Binding, AppendsEveryBatchEntryAndExposesPages) {
  CacheHolder cache(simpleConfig(kivi2()));
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seqs[2];
  for (kvc_rt_seq &seq : seqs)
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  kvc_rt_binding *binding = nullptr;
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, seqs, 2, &binding));

  Tokens keys(2, 2, 70, 1), values(2, 2, 70, 2);
  _mlir_ciface_kvc_rt_mlir_append(binding, &keys.desc, &values.desc);
  ASSERT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK)
      << kvc_rt_binding_error(binding);
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_EQ(kvc_rt_mlir_num_tokens(binding, b), 70);
    EXPECT_EQ(kvc_rt_mlir_compressed_tokens(binding, b), 64);
    EXPECT_NE(kvc_rt_mlir_page_table(binding, b), nullptr);
    EXPECT_NE(kvc_rt_mlir_residual(binding, b, 0), nullptr);
  }
  // Batch entry 1 holds the second half of the tokens: its residual row 0
  // (token 64 of head 0) is the fp16 value appended for it.
  const uint16_t *residual =
      static_cast<const uint16_t *>(kvc_rt_mlir_residual(binding, 1, 0));
  float expected = keys.data[(1 * 2 + 0) * 70 * 64 + 64 * 64];
  EXPECT_EQ(kvc::numerics::halfToFloat(residual[0]),
            kvc::numerics::roundToHalf(expected));
  EXPECT_NE(kvc_rt_mlir_pool(binding, 0), nullptr);
  EXPECT_NE(kvc_rt_mlir_pool(binding, 0), kvc_rt_mlir_pool(binding, 1));
  kvc_rt_binding_destroy(binding);
}

TEST_F(BoundSequence, LayoutCheckRecordsAMismatch) {
  kvc_rt_layer_view view;
  ASSERT_RT_OK(kvc_rt_layer_view_get(cache, 0, &view));
  EXPECT_EQ(kvc_rt_mlir_check_layout(binding, 64, view.k.block_bytes,
                                     view.v.block_bytes, 64, 2, 64),
            1);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK);
  // Code compiled for 32-token pages must not read these pages.
  EXPECT_EQ(kvc_rt_mlir_check_layout(binding, 32, view.k.block_bytes,
                                     view.v.block_bytes, 64, 2, 64),
            0);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_ENCODING_MISMATCH);
  EXPECT_NE(std::string(kvc_rt_binding_error(binding)).find("page_tokens 32"),
            std::string::npos);
  // Sticky: later entry points do nothing and report no data.
  EXPECT_EQ(kvc_rt_mlir_num_tokens(binding, 0), 0);
  EXPECT_EQ(kvc_rt_mlir_pool(binding, 0), nullptr);
  kvc_rt_binding_clear_error(binding);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK);
  EXPECT_NE(kvc_rt_mlir_pool(binding, 0), nullptr);
}

TEST_F(BoundSequence, BadUseIsRecordedNotFatal) {
  // A batch entry past the binding's batch.
  EXPECT_EQ(kvc_rt_mlir_page_table(binding, 3), nullptr);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_ARGUMENT);
  kvc_rt_binding_clear_error(binding);

  // Tokens of batch 2 for a binding of batch 1: nothing is appended.
  Tokens keys(2, 2, 1, 3), values(2, 2, 1, 4);
  _mlir_ciface_kvc_rt_mlir_append(binding, &keys.desc, &values.desc);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_SHAPE_MISMATCH);
  uint64_t length = 1;
  ASSERT_RT_OK(kvc_rt_sequence_length(cache, seq, 0, &length));
  EXPECT_EQ(length, 0u);
  kvc_rt_binding_clear_error(binding);

  // Past max_tokens: the runtime's error, recorded with its message.
  Tokens many(1, 2, 513, 5), manyValues(1, 2, 513, 6);
  _mlir_ciface_kvc_rt_mlir_append(binding, &many.desc, &manyValues.desc);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_CAPACITY_EXCEEDED);
  EXPECT_NE(std::string(kvc_rt_binding_error(binding)).find("kvc_rt_append"),
            std::string::npos);

  // Creation checks its arguments.
  kvc_rt_binding *other = nullptr;
  EXPECT_EQ(kvc_rt_binding_create(cache, 1, &seq, 1, &other),
            KVC_RT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kvc_rt_binding_create(cache, 0, &seq, 0, &other),
            KVC_RT_ERROR_INVALID_ARGUMENT);
  kvc_rt_seq bogus = seq + 1000;
  EXPECT_EQ(kvc_rt_binding_create(cache, 0, &bogus, 1, &other),
            KVC_RT_ERROR_INVALID_SEQUENCE);
  EXPECT_EQ(kvc_rt_binding_create(nullptr, 0, &seq, 1, &other),
            KVC_RT_ERROR_NULL_POINTER);
  EXPECT_EQ(other, nullptr);
  EXPECT_EQ(kvc_rt_binding_status(nullptr), KVC_RT_ERROR_NULL_POINTER);
  kvc_rt_binding_destroy(nullptr);
}
