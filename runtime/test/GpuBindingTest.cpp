//===- GpuBindingTest.cpp - the binding as GPU host code sees it ----------===//
//
// kvc_rt_mlir_gpu_sequences / kvc_rt_mlir_gpu_workspace on the CPU and
// CPU_STAGED backends. CPU_STAGED keeps its "backend memory" apart from the
// host state and reaches it only through the backend's copies, as CUDA does,
// so the records are checked against the cache's own views; the same checks
// on a real device are in cuda/CudaRuntimeTest.cpp.
//
//===----------------------------------------------------------------------===//

#include "ModelDriver.h"
#include "TestUtil.h"
#include "kvc_runtime_binding.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>

using namespace kvc::rt::testing;

// ASan aborts on impossible allocations instead of returning NULL.
#if defined(__SANITIZE_ADDRESS__)
#define KVC_RT_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KVC_RT_TEST_ASAN 1
#endif
#endif

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

bool aligned256(const void *p) { return uintptr_t(p) % 256 == 0; }

/// Expects `record` to describe `seq` exactly as kvc_rt_sequence_view does.
void expectRecordMatches(kvc_rt_cache *cache, kvc_rt_seq seq,
                         const kvc_rt_gpu_sequence &record, const char *where) {
  SCOPED_TRACE(where);
  kvc_rt_sequence_view view;
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, seq, 0, &view));
  EXPECT_EQ(record.page_table, uint64_t(uintptr_t(view.page_table_device)));
  EXPECT_EQ(record.k_residual, uint64_t(uintptr_t(view.k_residual)));
  EXPECT_EQ(record.v_residual, uint64_t(uintptr_t(view.v_residual)));
  EXPECT_EQ(record.num_tokens, view.num_tokens);
  EXPECT_EQ(record.compressed_tokens, view.compressed_tokens);
  // Both backends keep the row in host-addressable memory: the row a kernel
  // would follow holds the sequence's pages.
  const int32_t *row =
      reinterpret_cast<const int32_t *>(uintptr_t(record.page_table));
  for (uint32_t i = 0; i < view.num_pages; ++i)
    EXPECT_EQ(row[i], view.page_table[i]) << "page " << i;
}

class GpuBinding : public ::testing::TestWithParam<uint32_t> {};

} // namespace

TEST_P(GpuBinding, RecordsFollowTheSequencesThroughFlushes) {
  const uint32_t backend = GetParam();
  CacheHolder cache(simpleConfig(kivi2(), backend));
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seqs[3];
  for (kvc_rt_seq &seq : seqs)
    ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  // Batch entry b is bound[b]: not the creation order.
  const kvc_rt_seq bound[2] = {seqs[2], seqs[0]};
  kvc_rt_binding *binding = nullptr;
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, bound, 2, &binding));

  // Empty sequences: no tokens, but a page-table row and residual buffers.
  const kvc_rt_gpu_sequence *records = kvc_rt_mlir_gpu_sequences(binding);
  ASSERT_NE(records, nullptr) << kvc_rt_binding_error(binding);
  EXPECT_TRUE(aligned256(records));
  for (int b = 0; b < 2; ++b) {
    EXPECT_EQ(records[b].num_tokens, 0u);
    EXPECT_NE(records[b].page_table, 0u);
    EXPECT_NE(records[b].k_residual, 0u);
    expectRecordMatches(cache, bound[b], records[b], "empty");
  }
  EXPECT_NE(records[0].page_table, records[1].page_table);

  // 70 tokens each: one flush (R = 64), 6 staged.
  Tokens keys(2, 2, 70, 1), values(2, 2, 70, 2);
  _mlir_ciface_kvc_rt_mlir_append(binding, &keys.desc, &values.desc);
  ASSERT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK)
      << kvc_rt_binding_error(binding);
  // The host appends more to entry 1 (and to an unbound sequence) itself.
  std::vector<float> more = randomTokens(2, 130, 64, 3);
  kvc_rt_tokens t = sliceTokens(more, more, 2, 130, 64, 0, 130);
  ASSERT_RT_OK(kvc_rt_append(cache, bound[1], 0, &t));
  t = sliceTokens(more, more, 2, 130, 64, 0, 7);
  ASSERT_RT_OK(kvc_rt_append(cache, seqs[1], 0, &t));

  const kvc_rt_gpu_sequence *again = kvc_rt_mlir_gpu_sequences(binding);
  ASSERT_NE(again, nullptr) << kvc_rt_binding_error(binding);
  EXPECT_EQ(again, records) << "the records are refreshed in place";
  EXPECT_EQ(again[0].num_tokens, 70u);
  EXPECT_EQ(again[0].compressed_tokens, 64u);
  EXPECT_EQ(again[1].num_tokens, 200u);
  EXPECT_EQ(again[1].compressed_tokens, 192u);
  expectRecordMatches(cache, bound[0], again[0], "after one flush");
  expectRecordMatches(cache, bound[1], again[1], "after three flushes");
  // The records agree with the scalar entry points of CPU code.
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_EQ(int64_t(again[b].num_tokens), kvc_rt_mlir_num_tokens(binding, b));
    EXPECT_EQ(int64_t(again[b].compressed_tokens),
              kvc_rt_mlir_compressed_tokens(binding, b));
    EXPECT_EQ(again[b].k_residual,
              uint64_t(uintptr_t(kvc_rt_mlir_residual(binding, b, 0))));
    EXPECT_EQ(again[b].v_residual,
              uint64_t(uintptr_t(kvc_rt_mlir_residual(binding, b, 1))));
  }
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK);

  // On CPU the page tables kernels read are the host matrix; CPU_STAGED has
  // a mirror of its own.
  kvc_rt_sequence_view view;
  ASSERT_RT_OK(kvc_rt_sequence_view_get(cache, bound[1], 0, &view));
  if (backend == KVC_RT_BACKEND_CPU)
    EXPECT_EQ(again[1].page_table, uint64_t(uintptr_t(view.page_table)));
  else
    EXPECT_NE(again[1].page_table, uint64_t(uintptr_t(view.page_table)));
  kvc_rt_binding_destroy(binding);
}

TEST_P(GpuBinding, RecordsAreCopiedOnlyWhenTheyChange) {
  CacheHolder cache(simpleConfig(kivi2(), GetParam()));
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seqs[2];
  kvc_rt_binding *binding = nullptr;
  ASSERT_NO_FATAL_FAILURE(bindNewSequences(cache, seqs, 2, &binding));
  auto *records =
      const_cast<kvc_rt_gpu_sequence *>(kvc_rt_mlir_gpu_sequences(binding));
  ASSERT_NE(records, nullptr) << kvc_rt_binding_error(binding);

  // Unchanged sequences: no copy. A mark in the copy (host-addressable on
  // these backends) survives the next call.
  records[0].num_tokens = 12345;
  EXPECT_EQ(kvc_rt_mlir_gpu_sequences(binding), records);
  EXPECT_EQ(records[0].num_tokens, 12345u);
  records[0].num_tokens = 0;

  // A reservation copies the records after it with its own append records,
  // in one block: the attention of the same step copies nothing.
  const kvc_rt_gpu_append *appended = kvc_rt_mlir_reserve_append(binding, 3);
  ASSERT_NE(appended, nullptr) << kvc_rt_binding_error(binding);
  const kvc_rt_gpu_sequence *after = kvc_rt_mlir_gpu_sequences(binding);
  ASSERT_NE(after, nullptr) << kvc_rt_binding_error(binding);
  // Past the two 40-byte append records, 256-byte aligned.
  EXPECT_EQ(reinterpret_cast<const uint8_t *>(after),
            reinterpret_cast<const uint8_t *>(appended) + 256);
  for (int b = 0; b < 2; ++b) {
    EXPECT_EQ(after[b].num_tokens, 3u);
    EXPECT_EQ(std::memcmp(&after[b], &appended[b].sequence, sizeof(after[b])),
              0);
    expectRecordMatches(cache, seqs[b], after[b], "after the reservation");
  }
  EXPECT_EQ(kvc_rt_mlir_gpu_sequences(binding), after);

  // A change the binding did not make (the host appends to a sequence
  // itself) is copied again, into the binding's own block.
  std::vector<float> more = randomTokens(2, 70, 64, 5);
  kvc_rt_tokens t = sliceTokens(more, more, 2, 70, 64, 0, 70);
  ASSERT_RT_OK(kvc_rt_append(cache, seqs[1], 0, &t));
  const kvc_rt_gpu_sequence *changed = kvc_rt_mlir_gpu_sequences(binding);
  ASSERT_NE(changed, nullptr) << kvc_rt_binding_error(binding);
  EXPECT_EQ(changed, records);
  EXPECT_EQ(changed[0].num_tokens, 3u);
  EXPECT_EQ(changed[1].num_tokens, 73u);
  for (int b = 0; b < 2; ++b)
    expectRecordMatches(cache, seqs[b], changed[b], "after the host's append");
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK);
  kvc_rt_binding_destroy(binding);
}

TEST_P(GpuBinding, NoResidualBuffersWithoutAResidualWindow) {
  // Token-axis quantization compresses every token at once (R = 0).
  const kvc_rt_encoding enc =
      makeEncoding(quantSide(4, KVC_RT_AXIS_TOKEN, 32),
                   quantSide(4, KVC_RT_AXIS_TOKEN, 32), 0);
  CacheHolder cache(simpleConfig(enc, GetParam()));
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  std::vector<float> x = randomTokens(2, 65, 64, 4);
  kvc_rt_tokens t = sliceTokens(x, x, 2, 65, 64, 0, 65);
  ASSERT_RT_OK(kvc_rt_append(cache, seq, 0, &t));
  kvc_rt_binding *binding = nullptr;
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, &seq, 1, &binding));
  const kvc_rt_gpu_sequence *records = kvc_rt_mlir_gpu_sequences(binding);
  ASSERT_NE(records, nullptr) << kvc_rt_binding_error(binding);
  EXPECT_EQ(records[0].num_tokens, 65u);
  EXPECT_EQ(records[0].compressed_tokens, 65u);
  EXPECT_EQ(records[0].k_residual, 0u);
  EXPECT_EQ(records[0].v_residual, 0u);
  expectRecordMatches(cache, seq, records[0], "R = 0");
  kvc_rt_binding_destroy(binding);
}

TEST_P(GpuBinding, WorkspaceGrowsOnDemand) {
  CacheHolder cache(simpleConfig(kivi2(), GetParam()));
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  kvc_rt_binding *binding = nullptr;
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, &seq, 1, &binding));

  void *small = kvc_rt_mlir_gpu_workspace(binding, 100);
  ASSERT_NE(small, nullptr) << kvc_rt_binding_error(binding);
  EXPECT_TRUE(aligned256(small));
  // Host memory on these backends: all of it is usable (ASan checks the
  // sanitizer build).
  std::memset(small, 0xAB, 100);
  // Not larger than what the block holds (256 after rounding): the same.
  EXPECT_EQ(kvc_rt_mlir_gpu_workspace(binding, 0), small);
  EXPECT_EQ(kvc_rt_mlir_gpu_workspace(binding, 256), small);
  std::memset(small, 0xCD, 256);
  void *large = kvc_rt_mlir_gpu_workspace(binding, 1 << 20);
  ASSERT_NE(large, nullptr) << kvc_rt_binding_error(binding);
  EXPECT_TRUE(aligned256(large));
  std::memset(large, 0xEF, 1 << 20);
  EXPECT_EQ(kvc_rt_mlir_gpu_workspace(binding, 1000), large);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK);

  // The records and the workspace are different blocks.
  const kvc_rt_gpu_sequence *records = kvc_rt_mlir_gpu_sequences(binding);
  ASSERT_NE(records, nullptr);
  EXPECT_NE(static_cast<const void *>(records), large);

  // A workspace that cannot be allocated is OUT_OF_MEMORY, sticky; the
  // binding keeps working once cleared.
#ifndef KVC_RT_TEST_ASAN
  EXPECT_EQ(
      kvc_rt_mlir_gpu_workspace(binding, std::numeric_limits<int64_t>::max()),
      nullptr);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_OUT_OF_MEMORY);
  EXPECT_NE(std::string(kvc_rt_binding_error(binding))
                .find("kvc_rt_mlir_gpu_workspace"),
            std::string::npos)
      << kvc_rt_binding_error(binding);
  EXPECT_EQ(kvc_rt_mlir_gpu_sequences(binding), nullptr);
  kvc_rt_binding_clear_error(binding);
  void *again = kvc_rt_mlir_gpu_workspace(binding, 4096);
  ASSERT_NE(again, nullptr) << kvc_rt_binding_error(binding);
  std::memset(again, 0, 4096);
#endif
  kvc_rt_binding_destroy(binding);
}

TEST_P(GpuBinding, CountersStartZeroAndGrowZeroed) {
  CacheHolder cache(simpleConfig(kivi2(), GetParam()));
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  kvc_rt_binding *binding = nullptr;
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, &seq, 1, &binding));

  // Dirty memory freed just before (a workspace that grew), which the
  // allocator may hand out again: the counters must not take its bytes.
  void *dirty = kvc_rt_mlir_gpu_workspace(binding, 4096);
  ASSERT_NE(dirty, nullptr) << kvc_rt_binding_error(binding);
  std::memset(dirty, 0xAB, 4096);
  ASSERT_NE(kvc_rt_mlir_gpu_workspace(binding, 1 << 16), nullptr);
  int32_t *reused = kvc_rt_mlir_gpu_counters(binding, 1024);
  ASSERT_NE(reused, nullptr) << kvc_rt_binding_error(binding);
  ASSERT_RT_OK(kvc_rt_cache_synchronize(cache));
  EXPECT_EQ(std::count(reused, reused + 1024, 0), 1024);

  kvc_rt_binding_destroy(binding);
  binding = nullptr;
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, &seq, 1, &binding));
  int32_t *small = kvc_rt_mlir_gpu_counters(binding, 10);
  ASSERT_NE(small, nullptr) << kvc_rt_binding_error(binding);
  EXPECT_TRUE(aligned256(small));
  ASSERT_RT_OK(kvc_rt_cache_synchronize(cache));
  // The whole rounded block (64 counters) is zero.
  for (int i = 0; i < 64; ++i)
    EXPECT_EQ(small[i], 0) << i;
  // What a kernel does in between (counts, then leaves them zero) is kept:
  // no refill while the block is large enough.
  small[3] = 7;
  EXPECT_EQ(kvc_rt_mlir_gpu_counters(binding, 64), small);
  EXPECT_EQ(small[3], 7);
  small[3] = 0;
  EXPECT_EQ(kvc_rt_mlir_gpu_counters(binding, 0), small);

  // A larger request: a new block, zero-filled.
  int32_t *large = kvc_rt_mlir_gpu_counters(binding, 100000);
  ASSERT_NE(large, nullptr) << kvc_rt_binding_error(binding);
  EXPECT_TRUE(aligned256(large));
  ASSERT_RT_OK(kvc_rt_cache_synchronize(cache));
  EXPECT_EQ(std::count(large, large + 100000, 0), 100000);
  // Apart from the workspace.
  EXPECT_NE(static_cast<void *>(large), kvc_rt_mlir_gpu_workspace(binding, 16));
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK);

  // A negative count, or one whose bytes overflow: INVALID_ARGUMENT, sticky.
  for (int64_t bad : {int64_t(-1), std::numeric_limits<int64_t>::max()}) {
    EXPECT_EQ(kvc_rt_mlir_gpu_counters(binding, bad), nullptr);
    EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(kvc_rt_binding_error(binding))
                  .find("kvc_rt_mlir_gpu_counters: " + std::to_string(bad)),
              std::string::npos)
        << kvc_rt_binding_error(binding);
    kvc_rt_binding_clear_error(binding);
  }
  EXPECT_EQ(kvc_rt_mlir_gpu_counters(binding, 50), large);
  EXPECT_EQ(kvc_rt_mlir_gpu_counters(nullptr, 4), nullptr);
  kvc_rt_binding_destroy(binding);
}

TEST_P(GpuBinding, ErrorsAreStickyNotFatal) {
  CacheHolder cache(simpleConfig(kivi2(), GetParam()));
  ASSERT_RT_OK(cache.status());
  kvc_rt_seq seqs[2];
  kvc_rt_binding *binding = nullptr;
  ASSERT_NO_FATAL_FAILURE(bindNewSequences(cache, seqs, 2, &binding));

  EXPECT_EQ(kvc_rt_mlir_gpu_sequences(nullptr), nullptr);
  EXPECT_EQ(kvc_rt_mlir_gpu_workspace(nullptr, 16), nullptr);
  EXPECT_EQ(kvc_rt_mlir_gpu_check_layout(nullptr, 64, 1, 1, 64, 2, 64), 0);
  EXPECT_EQ(kvc_rt_mlir_gpu_stream(nullptr, nullptr), nullptr);
  kvc_rt_mlir_gpu_synchronize(nullptr);
  // Host backends have no stream (kernels would take the default one) and
  // nothing to wait for.
  EXPECT_EQ(kvc_rt_mlir_gpu_stream(binding, nullptr), nullptr);
  kvc_rt_mlir_gpu_synchronize(binding);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_OK);

  EXPECT_EQ(kvc_rt_mlir_gpu_workspace(binding, -1), nullptr);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_ARGUMENT);
  // Sticky: the next entry points do nothing.
  EXPECT_EQ(kvc_rt_mlir_gpu_sequences(binding), nullptr);
  EXPECT_EQ(kvc_rt_mlir_gpu_workspace(binding, 16), nullptr);
  // The stream (none on host backends) and the synchronization still
  // serve after an error (launched kernels must finish); the first error
  // stays.
  EXPECT_EQ(kvc_rt_mlir_gpu_stream(binding, nullptr), nullptr);
  kvc_rt_mlir_gpu_synchronize(binding);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_ARGUMENT);
  kvc_rt_binding_clear_error(binding);

  // The layout check of GPU code: what CPU code's check says, on every
  // backend these tests have.
  kvc_rt_layer_view lv;
  ASSERT_RT_OK(kvc_rt_layer_view_get(cache, 0, &lv));
  EXPECT_EQ(kvc_rt_mlir_gpu_check_layout(binding, 64, int64_t(lv.k.page_bytes),
                                         int64_t(lv.v.page_bytes), 64, 2, 64),
            1);
  EXPECT_EQ(kvc_rt_mlir_check_layout(binding, 64, int64_t(lv.k.page_bytes),
                                     int64_t(lv.v.page_bytes), 64, 2, 64),
            1);
  EXPECT_EQ(kvc_rt_mlir_gpu_check_layout(binding, 64, int64_t(lv.k.page_bytes),
                                         int64_t(lv.v.page_bytes), 32, 2, 64),
            0);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_ENCODING_MISMATCH);
  EXPECT_EQ(kvc_rt_mlir_gpu_sequences(binding), nullptr);
  kvc_rt_binding_clear_error(binding);

  // A bound sequence freed behind the binding's back.
  ASSERT_RT_OK(kvc_rt_sequence_free(cache, seqs[1]));
  EXPECT_EQ(kvc_rt_mlir_gpu_sequences(binding), nullptr);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_SEQUENCE);
  EXPECT_NE(std::string(kvc_rt_binding_error(binding))
                .find("kvc_rt_sequence_view_get"),
            std::string::npos);
  kvc_rt_binding_destroy(binding);

  // A binding of the live sequence alone works.
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, seqs, 1, &binding));
  const kvc_rt_gpu_sequence *records = kvc_rt_mlir_gpu_sequences(binding);
  ASSERT_NE(records, nullptr) << kvc_rt_binding_error(binding);
  expectRecordMatches(cache, seqs[0], records[0], "one entry");
  kvc_rt_binding_destroy(binding);
}

TEST_P(GpuBinding, StreamAndSynchronizeOnceTheCacheIsGone) {
  const ModelConfig model = simpleConfig(kivi2(), GetParam());
  const kvc_rt_cache_config config = model.get();
  kvc_rt_cache *cache = nullptr;
  ASSERT_RT_OK(kvc_rt_cache_create(&config, &cache));
  kvc_rt_seq seq;
  ASSERT_RT_OK(kvc_rt_sequence_create(cache, &seq));
  kvc_rt_binding *binding = nullptr;
  ASSERT_RT_OK(kvc_rt_binding_create(cache, 0, &seq, 1, &binding));
  ASSERT_RT_OK(kvc_rt_cache_destroy(cache));
  // No stream to give, nothing to wait for: errors, not crashes.
  EXPECT_EQ(kvc_rt_mlir_gpu_stream(binding, nullptr), nullptr);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_HANDLE);
  kvc_rt_binding_clear_error(binding);
  kvc_rt_mlir_gpu_synchronize(binding);
  EXPECT_EQ(kvc_rt_binding_status(binding), KVC_RT_ERROR_INVALID_HANDLE);
  EXPECT_NE(std::string(kvc_rt_binding_error(binding)).find("destroyed"),
            std::string::npos);
  kvc_rt_binding_destroy(binding);
}

INSTANTIATE_TEST_SUITE_P(Backends, GpuBinding,
                         ::testing::Values(uint32_t(KVC_RT_BACKEND_CPU),
                                           uint32_t(KVC_RT_BACKEND_CPU_STAGED)),
                         [](const ::testing::TestParamInfo<uint32_t> &info) {
                           return info.param == KVC_RT_BACKEND_CPU
                                      ? std::string("CPU")
                                      : std::string("CPUStaged");
                         });
