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

#include <cstring>

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
  kvc_rt_binding *binding = nullptr;
  ASSERT_NO_FATAL_FAILURE(bindNewSequences(cache, seqs, 2, &binding));

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
  // Whole pages: two heads' blocks.
  EXPECT_EQ(kvc_rt_mlir_check_layout(binding, 64, 2 * view.k.block_bytes,
                                     2 * view.v.block_bytes, 64, 2, 64),
            1);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK);
  // One head's block is not the page size any more.
  EXPECT_EQ(kvc_rt_mlir_check_layout(binding, 64, view.k.block_bytes,
                                     view.v.block_bytes, 64, 2, 64),
            0);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_ENCODING_MISMATCH);
  EXPECT_NE(std::string(kvc_rt_binding_error(binding)).find("K/V pages"),
            std::string::npos);
  kvc_rt_binding_clear_error(binding);
  // Code compiled for 32-token pages must not read these pages.
  EXPECT_EQ(kvc_rt_mlir_check_layout(binding, 32, view.k.page_bytes,
                                     view.v.page_bytes, 64, 2, 64),
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

TEST(Binding, SideDescriptorsPackEveryField) {
  const kvc_rt_side_encoding sides[] = {
      fp16Side(), fp8Side(KVC_RT_FP8_E5M2),
      quantSide(3, KVC_RT_AXIS_TOKEN, 64), quantSide(2, KVC_RT_AXIS_CHANNEL, 32)};
  EXPECT_EQ(kvc_rt_pack_side_encoding(&sides[0]), 0);
  EXPECT_EQ(kvc_rt_pack_side_encoding(&sides[1]), int64_t(2 | 1 << 24));
  EXPECT_EQ(kvc_rt_pack_side_encoding(&sides[2]),
            int64_t(1 | 3 << 8 | 1 << 16) | int64_t(64) << 32);
  for (const kvc_rt_side_encoding &s : sides) {
    const kvc_rt_side_encoding back =
        kvc_rt_unpack_side_encoding(kvc_rt_pack_side_encoding(&s));
    EXPECT_EQ(std::memcmp(&back, &s, sizeof(s)), 0);
  }
}

TEST(Binding, HeadChecksFollowEachHeadsEncoding) {
  ModelConfig m = preset(5, KVC_RT_BACKEND_CPU); // per-head, 3 heads
  CacheHolder cache(m);
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  kvc_rt_binding *binding = nullptr;
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, &seq, 1, &binding));
  kvc_rt_layer_view lv;
  ASSERT_RT_OK(kvc_rt_layer_view_get(cache, 0, &lv));
  EXPECT_EQ(lv.uniform_heads, 0u);
  EXPECT_EQ(kvc_rt_mlir_check_layout(binding, 64, lv.k.page_bytes,
                                     lv.v.page_bytes, 64, 3, 64),
            1);
  kvc_rt_head_view views[3];
  for (int64_t h = 0; h < 3; ++h) {
    ASSERT_RT_OK(kvc_rt_head_view_get(cache, 0, uint32_t(h), &views[h]));
    const kvc_rt_encoding &e = m.encodingOf(0, uint32_t(h));
    EXPECT_EQ(kvc_rt_mlir_check_head(binding, h,
                                     kvc_rt_pack_side_encoding(&e.key),
                                     kvc_rt_pack_side_encoding(&e.value),
                                     int64_t(views[h].k_block_offset),
                                     int64_t(views[h].v_block_offset)),
              1)
        << kvc_rt_binding_error(binding);
  }
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK);

  // Head 1 checked with head 0's key encoding: names both.
  const kvc_rt_encoding &e0 = m.encodingOf(0, 0), &e1 = m.encodingOf(0, 1);
  EXPECT_EQ(kvc_rt_mlir_check_head(binding, 1,
                                   kvc_rt_pack_side_encoding(&e0.key),
                                   kvc_rt_pack_side_encoding(&e1.value),
                                   int64_t(views[1].k_block_offset),
                                   int64_t(views[1].v_block_offset)),
            0);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_ENCODING_MISMATCH);
  const std::string message = kvc_rt_binding_error(binding);
  EXPECT_NE(message.find("KV head 1"), std::string::npos) << message;
  EXPECT_NE(message.find("compiled for K quant<bits 4, channel, group 32>"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("has K quant<bits 2, channel, group 32>"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("fp8<e4m3>"), std::string::npos) << message;
  // Sticky: a correct check now reports nothing.
  EXPECT_EQ(kvc_rt_mlir_check_head(binding, 0,
                                   kvc_rt_pack_side_encoding(&e0.key),
                                   kvc_rt_pack_side_encoding(&e0.value), 0, 0),
            0);
  kvc_rt_binding_clear_error(binding);

  // Right encodings, wrong block offset (compiled for uniform blocks).
  EXPECT_EQ(kvc_rt_mlir_check_head(
                binding, 2, kvc_rt_pack_side_encoding(&m.encodingOf(0, 2).key),
                kvc_rt_pack_side_encoding(&m.encodingOf(0, 2).value),
                int64_t(2 * views[0].k.block_bytes),
                int64_t(views[2].v_block_offset)),
            0);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_ENCODING_MISMATCH);
  kvc_rt_binding_clear_error(binding);

  // Heads the layer does not have, and garbage descriptors.
  for (int64_t head : {int64_t(3), int64_t(-1)}) {
    EXPECT_EQ(kvc_rt_mlir_check_head(binding, head, 0, 0, 0, 0), 0);
    EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_ENCODING_MISMATCH);
    EXPECT_NE(std::string(kvc_rt_binding_error(binding)).find("only 3 KV heads"),
              std::string::npos);
    kvc_rt_binding_clear_error(binding);
  }
  EXPECT_EQ(kvc_rt_mlir_check_head(binding, 0, -1, int64_t(99), 0, 0), 0);
  EXPECT_NE(std::string(kvc_rt_binding_error(binding)).find("kind 255"),
            std::string::npos)
      << kvc_rt_binding_error(binding);
  kvc_rt_binding_clear_error(binding);
  EXPECT_EQ(kvc_rt_mlir_check_head(nullptr, 0, 0, 0, 0, 0), 0);
  kvc_rt_binding_destroy(binding);
}
