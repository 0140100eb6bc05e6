//===- BindingEvict.cpp - kvc.evict as compiled code calls it ------------===//
//
// The eviction entry points of kvc_runtime_binding.h (kvc.evict with one
// budget or one per KV head, dropping or demoting the evicted tokens) and
// the live bitmaps the attention of an evicted cache reads, through the
// public C API like the rest of Binding.cpp.
//
//===----------------------------------------------------------------------===//

#include "BindingState.h"
#include "Cache.h"

#include <algorithm>
#include <string>
#include <vector>

using kvc::rt::Backend;
using namespace kvc::rt::binding;

extern "C" {

/// kvc.evict for both entry points: `headBudgets` is null or kv_heads
/// budgets already checked to fit uint32.
static void evictBatch(kvc_rt_binding *binding, kvc_rt_memref_3d_f32 *scores,
                       int64_t kind, int64_t sink, int64_t window,
                       int64_t budget, const uint32_t *headBudgets,
                       const kvc_rt_encoding *demote = nullptr) {
  const int64_t params[] = {kind, sink, window, budget};
  for (int64_t p : params)
    if (p < 0 || p > int64_t(UINT32_MAX)) {
      fail(binding, KVC_RT_ERROR_INVALID_ARGUMENT,
           "kvc.evict: policy parameter " + std::to_string(p) +
               " is out of range");
      return;
    }
  kvc_rt_evict_policy policy;
  policy.kind = uint32_t(kind);
  policy.sink = uint32_t(sink);
  policy.window = uint32_t(window);
  policy.budget = uint32_t(budget);
  const size_t batch = binding->seqs.size();
  const int64_t heads = binding->layerView.kv_heads;
  // Streaming ranks nothing: whatever descriptor came (the lowering passes
  // an empty memref) is not looked at.
  if (kind == KVC_RT_EVICT_STREAMING)
    scores = nullptr;
  if (scores && (scores->sizes[0] != int64_t(batch) ||
                 scores->sizes[1] != heads || scores->sizes[2] < 0)) {
    fail(binding, KVC_RT_ERROR_SHAPE_MISMATCH,
         "kvc.evict: scores of shape [" + std::to_string(scores->sizes[0]) +
             "][" + std::to_string(scores->sizes[1]) + "][" +
             std::to_string(scores->sizes[2]) + "] for a binding of batch " +
             std::to_string(batch) + " and " + std::to_string(heads) +
             " KV heads");
    return;
  }
  for (size_t b = 0; b < batch; ++b) {
    uint64_t n;
    if (!check(binding,
               kvc_rt_sequence_length(binding->cache, binding->seqs[b],
                                      binding->layer, &n),
               "kvc_rt_sequence_length"))
      return;
    const float *rows = nullptr;
    if (scores) {
      const int64_t count = scores->sizes[2];
      const float *base =
          scores->aligned + scores->offset + int64_t(b) * scores->strides[0];
      if (scores->strides[2] == 1 && scores->strides[1] == count) {
        rows = base;
      } else {
        binding->scoreScratch.resize(size_t(heads) * size_t(count));
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t t = 0; t < count; ++t)
            binding->scoreScratch[size_t(h * count + t)] =
                base[h * scores->strides[1] + t * scores->strides[2]];
        rows = binding->scoreScratch.data();
      }
      // kvc_rt_evict checks n; a mismatch is reported with its message.
      if (uint64_t(count) != n) {
        fail(binding, KVC_RT_ERROR_INVALID_ARGUMENT,
             "kvc.evict: scores cover " + std::to_string(count) +
                 " tokens but batch entry " + std::to_string(b) + " has " +
                 std::to_string(n));
        return;
      }
    }
    const kvc_rt_status status =
        demote
            ? kvc_rt_evict_demote(binding->cache, binding->seqs[b],
                                  binding->layer, &policy, headBudgets, demote,
                                  rows, n)
            : kvc_rt_evict_heads(binding->cache, binding->seqs[b],
                                 binding->layer, &policy, headBudgets, rows, n);
    if (!check(binding, status,
               demote ? "kvc_rt_evict_demote" : "kvc_rt_evict"))
      return;
  }
}

void _mlir_ciface_kvc_rt_mlir_evict(kvc_rt_binding *binding,
                                    kvc_rt_memref_3d_f32 *scores, int64_t kind,
                                    int64_t sink, int64_t window,
                                    int64_t budget) {
  if (!usable(binding))
    return;
  evictBatch(binding, scores, kind, sink, window, budget, nullptr);
}

/// Checks and copies kv_heads per-head budgets; false (recorded) if bad.
static bool readHeadBudgets(kvc_rt_binding *binding,
                            const kvc_rt_memref_1d_i64 *budgets,
                            std::vector<uint32_t> &out, int64_t &largest) {
  const int64_t heads = binding->layerView.kv_heads;
  if (!budgets || budgets->sizes[0] != heads)
    return fail(
        binding, KVC_RT_ERROR_SHAPE_MISMATCH,
        "kvc.evict: " +
            (budgets ? std::to_string(budgets->sizes[0]) : std::string("no")) +
            " per-head budgets for " + std::to_string(heads) + " KV heads");
  out.assign(static_cast<size_t>(heads), 0);
  largest = 0;
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t b =
        budgets->aligned[budgets->offset + h * budgets->strides[0]];
    if (b < 0 || b > int64_t(UINT32_MAX))
      return fail(binding, KVC_RT_ERROR_INVALID_ARGUMENT,
                  "kvc.evict: budget " + std::to_string(b) + " of KV head " +
                      std::to_string(h) + " is out of range");
    out[size_t(h)] = uint32_t(b);
    largest = std::max(largest, b);
  }
  return true;
}

/// kvc.evict with one budget per KV head, dropping or (`demote`) keeping
/// the evicted tokens.
static void evictWithHeadBudgets(kvc_rt_binding *binding,
                                 kvc_rt_memref_3d_f32 *scores, int64_t kind,
                                 int64_t sink, int64_t window,
                                 kvc_rt_memref_1d_i64 *budgets,
                                 const kvc_rt_encoding *demote) {
  if (!usable(binding))
    return;
  std::vector<uint32_t> headBudgets;
  int64_t largest;
  if (!readHeadBudgets(binding, budgets, headBudgets, largest))
    return;
  evictBatch(binding, scores, kind, sink, window, largest, headBudgets.data(),
             demote);
}

void _mlir_ciface_kvc_rt_mlir_evict_demote(
    kvc_rt_binding *binding, kvc_rt_memref_3d_f32 *scores, int64_t kind,
    int64_t sink, int64_t window, kvc_rt_memref_1d_i64 *budgets,
    int64_t demote_key, int64_t demote_value) {
  kvc_rt_encoding demote{};
  demote.key = kvc_rt_unpack_side_encoding(demote_key);
  demote.value = kvc_rt_unpack_side_encoding(demote_value);
  evictWithHeadBudgets(binding, scores, kind, sink, window, budgets, &demote);
}

const uint8_t *const *kvc_rt_mlir_demoted_pages(kvc_rt_binding *binding,
                                                int64_t b, int64_t demote_key,
                                                int64_t demote_value) {
  kvc_rt_sequence_view view;
  if (!sequenceView(binding, b, &view))
    return nullptr;
  if (!view.demoted_pages)
    return nullptr;
  if (kvc_rt_pack_side_encoding(&view.demote.key) != demote_key ||
      kvc_rt_pack_side_encoding(&view.demote.value) != demote_value) {
    fail(binding, KVC_RT_ERROR_ENCODING_MISMATCH,
         "batch entry " + std::to_string(b) + " keeps its evicted tokens as " +
             describeSide(kvc_rt_pack_side_encoding(&view.demote.key)) + " / " +
             describeSide(kvc_rt_pack_side_encoding(&view.demote.value)) +
             " but the compiled code reads " + describeSide(demote_key) +
             " / " + describeSide(demote_value));
    return nullptr;
  }
  return view.demoted_pages;
}

void _mlir_ciface_kvc_rt_mlir_evict_heads(kvc_rt_binding *binding,
                                          kvc_rt_memref_3d_f32 *scores,
                                          int64_t kind, int64_t sink,
                                          int64_t window,
                                          kvc_rt_memref_1d_i64 *budgets) {
  evictWithHeadBudgets(binding, scores, kind, sink, window, budgets, nullptr);
}

const uint8_t *kvc_rt_mlir_live_bitmap(kvc_rt_binding *binding, int64_t b,
                                       int64_t head) {
  kvc_rt_sequence_view view;
  if (!sequenceView(binding, b, &view))
    return nullptr;
  if (head < 0 || head >= int64_t(view.kv_heads)) {
    fail(binding, KVC_RT_ERROR_INVALID_ARGUMENT,
         "KV head " + std::to_string(head) + " out of range (" +
             std::to_string(view.kv_heads) + " heads)");
    return nullptr;
  }
  if (!view.live_bitmap)
    return nullptr;
  return view.live_bitmap + size_t(head) * view.live_bitmap_head_bytes;
}

const uint64_t *kvc_rt_mlir_gpu_live_bitmaps(kvc_rt_binding *binding) {
  if (!usable(binding))
    return nullptr;
  const size_t batch = binding->seqs.size();
  const size_t heads = binding->layerView.kv_heads;
  // Pass 1: where each bitmap copy goes (8-byte aligned per head).
  std::vector<kvc_rt_sequence_view> views(batch);
  size_t bitmapBytes = 0;
  for (size_t b = 0; b < batch; ++b) {
    if (!sequenceView(binding, int64_t(b), &views[b]))
      return nullptr;
    if (views[b].live_bitmap)
      bitmapBytes += heads * ((views[b].num_tokens + 63) / 64 * 8);
  }
  Backend *backend = backendOf(binding);
  if (!backend ||
      !reserve(binding, *backend, binding->bitmapAddresses,
               batch * heads * sizeof(uint64_t),
               "kvc_rt_mlir_gpu_live_bitmaps") ||
      !reserve(binding, *backend, binding->bitmaps, bitmapBytes,
               "kvc_rt_mlir_gpu_live_bitmaps"))
    return nullptr;
  // Pass 2: stage the copies and their addresses.
  binding->hostBitmaps.assign(bitmapBytes, 0);
  binding->hostBitmapAddresses.assign(batch * heads, 0);
  size_t offset = 0;
  for (size_t b = 0; b < batch; ++b) {
    const kvc_rt_sequence_view &view = views[b];
    if (!view.live_bitmap)
      continue;
    const size_t headBytes = (view.num_tokens + 63) / 64 * 8;
    for (size_t h = 0; h < heads; ++h) {
      std::copy(view.live_bitmap + h * view.live_bitmap_head_bytes,
                view.live_bitmap + h * view.live_bitmap_head_bytes + headBytes,
                binding->hostBitmaps.begin() + offset);
      binding->hostBitmapAddresses[b * heads + h] =
          uint64_t(uintptr_t(binding->bitmaps.data + offset));
      offset += headBytes;
    }
  }
  kvc::rt::Status s = kvc::rt::Status::ok();
  if (bitmapBytes)
    s = backend->copyToArena(binding->bitmaps.data, binding->hostBitmaps.data(),
                             bitmapBytes);
  if (s.isOk())
    s = backend->copyToArena(binding->bitmapAddresses.data,
                             binding->hostBitmapAddresses.data(),
                             batch * heads * sizeof(uint64_t));
  if (!s.isOk()) {
    fail(binding, s.code(), "kvc_rt_mlir_gpu_live_bitmaps: " + s.message());
    return nullptr;
  }
  return reinterpret_cast<const uint64_t *>(binding->bitmapAddresses.data);
}

} // extern "C"
