//===- Binding.cpp - caches as seen by compiled code ----------------------===//
//
// The entry points kvc-compiled code calls (kvc_runtime_binding.h). They are
// thin: everything goes through the public C API, so compiled code gets the
// same checks and the same numerics as any other caller. Only the GPU
// records and workspace reach the cache's backend directly, to put them in
// backend memory with the same code on every backend.
//
// kvc.evict's entry points are in BindingEvict.cpp.
//
//===----------------------------------------------------------------------===//

#include "kvc_runtime_binding.h"

#include "BindingState.h"
#include "Cache.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <vector>

using kvc::rt::Backend;
using kvc::rt::BackendBlock;
using namespace kvc::rt::binding;

namespace kvc::rt::binding {

// Declared, and described, in BindingState.h.

bool fail(kvc_rt_binding *binding, kvc_rt_status status,
          const std::string &message) {
  if (binding->status == KVC_RT_OK) {
    binding->status = status;
    binding->error = message;
  }
  return false;
}

bool check(kvc_rt_binding *binding, kvc_rt_status status, const char *what) {
  if (status == KVC_RT_OK)
    return true;
  return fail(binding, status,
              std::string(what) + ": " + kvc_rt_cache_last_error(binding->cache));
}

bool usable(kvc_rt_binding *binding) {
  return binding && binding->status == KVC_RT_OK;
}

Backend *backendOf(kvc_rt_binding *binding) {
  kvc::rt::Cache *cache = kvc::rt::liveCache(binding->cache);
  if (!cache) {
    fail(binding, KVC_RT_ERROR_INVALID_HANDLE,
         "the binding's cache was destroyed");
    return nullptr;
  }
  return &cache->backend();
}

bool reserve(kvc_rt_binding *binding, Backend &backend, BackendBlock &block,
             size_t bytes, const char *what) {
  if (block.data && block.bytes >= bytes)
    return true;
  if (block.data) {
    backend.release(block.data);
    block = BackendBlock();
  }
  // Backend allocations are 256-byte aligned; round the size the same way.
  const size_t rounded = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
  const kvc::rt::Status s = backend.allocate(rounded, &block.data);
  if (!s.isOk()) {
    block.data = nullptr;
    return fail(binding, s.code(), std::string(what) + ": " + s.message());
  }
  block.bytes = rounded;
  return true;
}

bool sequenceView(kvc_rt_binding *binding, int64_t b,
                  kvc_rt_sequence_view *view) {
  if (!usable(binding))
    return false;
  if (b < 0 || size_t(b) >= binding->seqs.size())
    return fail(binding, KVC_RT_ERROR_INVALID_ARGUMENT,
                "batch index " + std::to_string(b) + " out of range (batch " +
                    std::to_string(binding->seqs.size()) + ")");
  return check(binding,
               kvc_rt_sequence_view_get(binding->cache, binding->seqs[b],
                                        binding->layer, view),
               "kvc_rt_sequence_view_get");
}

std::string describeSide(int64_t descriptor) {
  const kvc_rt_side_encoding s = kvc_rt_unpack_side_encoding(descriptor);
  std::string text;
  switch (s.kind) {
  case KVC_RT_SIDE_FP16:
    text = "fp16";
    break;
  case KVC_RT_SIDE_QUANT:
    text = "quant<bits " + std::to_string(s.bits) + ", " +
           (s.axis == KVC_RT_AXIS_CHANNEL ? std::string("channel")
            : s.axis == KVC_RT_AXIS_TOKEN ? std::string("token")
                                          : "axis " + std::to_string(s.axis)) +
           ", group " + std::to_string(s.group) + ">";
    break;
  case KVC_RT_SIDE_FP8:
    text = s.fp8_format == KVC_RT_FP8_E4M3 ? "fp8<e4m3>"
           : s.fp8_format == KVC_RT_FP8_E5M2
               ? "fp8<e5m2>"
               : "fp8<format " + std::to_string(s.fp8_format) + ">";
    break;
  default:
    text = "kind " + std::to_string(s.kind);
    break;
  }
  // Fields the kind does not use must be 0; show them when they are not.
  if ((s.kind == KVC_RT_SIDE_FP16 &&
       (s.bits || s.axis || s.group || s.fp8_format)) ||
      (s.kind == KVC_RT_SIDE_QUANT && s.fp8_format) ||
      (s.kind == KVC_RT_SIDE_FP8 && (s.bits || s.axis || s.group)))
    text += " (descriptor " + std::to_string(descriptor) + ")";
  return text;
}

} // namespace kvc::rt::binding

namespace {

/// kvc_rt_mlir_check_layout without the backend check.
bool checkLayout(kvc_rt_binding *binding, int64_t pageTokens,
                 int64_t kPageBytes, int64_t vPageBytes, int64_t residual,
                 int64_t kvHeads, int64_t headDim) {
  const kvc_rt_layer_view &view = binding->layerView;
  if (int64_t(view.page_tokens) == pageTokens &&
      int64_t(view.k.page_bytes) == kPageBytes &&
      int64_t(view.v.page_bytes) == vPageBytes &&
      int64_t(view.residual) == residual && int64_t(view.kv_heads) == kvHeads &&
      int64_t(view.head_dim) == headDim)
    return true;
  return fail(binding, KVC_RT_ERROR_ENCODING_MISMATCH,
              "compiled for page_tokens " + std::to_string(pageTokens) +
                  ", K/V pages " + std::to_string(kPageBytes) + "/" +
                  std::to_string(vPageBytes) + " B, residual " +
                  std::to_string(residual) + ", " + std::to_string(kvHeads) +
                  " heads of " + std::to_string(headDim) +
                  "; the cache layer has " + std::to_string(view.page_tokens) +
                  ", " + std::to_string(view.k.page_bytes) + "/" +
                  std::to_string(view.v.page_bytes) + " B, " +
                  std::to_string(view.residual) + ", " +
                  std::to_string(view.kv_heads) + " heads of " +
                  std::to_string(view.head_dim));
}

} // namespace

extern "C" {

kvc_rt_status kvc_rt_binding_create(kvc_rt_cache *cache, uint32_t layer,
                                    const kvc_rt_seq *seqs, uint32_t batch,
                                    kvc_rt_binding **out) {
  if (!cache || !seqs || !out)
    return KVC_RT_ERROR_NULL_POINTER;
  if (batch == 0)
    return KVC_RT_ERROR_INVALID_ARGUMENT;
  kvc_rt_cache_config config;
  if (kvc_rt_status status = kvc_rt_cache_get_config(cache, &config))
    return status;
  kvc_rt_layer_view layerView;
  if (kvc_rt_status status = kvc_rt_layer_view_get(cache, layer, &layerView))
    return status;
  for (uint32_t b = 0; b < batch; ++b) {
    uint64_t length;
    if (kvc_rt_status status =
            kvc_rt_sequence_length(cache, seqs[b], layer, &length))
      return status;
  }
  auto *binding = new (std::nothrow) kvc_rt_binding;
  if (!binding)
    return KVC_RT_ERROR_OUT_OF_MEMORY;
  binding->cache = cache;
  binding->layer = layer;
  binding->backend = kvc_rt_backend(config.backend);
  binding->seqs.assign(seqs, seqs + batch);
  binding->hostRecords.resize(batch);
  binding->layerView = layerView;
  *out = binding;
  return KVC_RT_OK;
}

void kvc_rt_binding_destroy(kvc_rt_binding *binding) {
  if (!binding)
    return;
  // After the cache (a misuse) its backend is gone: the blocks leak rather
  // than being freed through a dangling backend.
  if (kvc::rt::Cache *cache = kvc::rt::liveCache(binding->cache))
    for (BackendBlock *block : {&binding->records, &binding->workspace,
                                &binding->counters, &binding->appendRecords,
                                &binding->bitmapAddresses, &binding->bitmaps})
      if (block->data)
        cache->backend().release(block->data);
  delete binding;
}

kvc_rt_status kvc_rt_binding_status(const kvc_rt_binding *binding) {
  return binding ? binding->status : KVC_RT_ERROR_NULL_POINTER;
}

const char *kvc_rt_binding_error(const kvc_rt_binding *binding) {
  return binding ? binding->error.c_str() : "null binding";
}

void kvc_rt_binding_clear_error(kvc_rt_binding *binding) {
  if (!binding)
    return;
  binding->status = KVC_RT_OK;
  binding->error.clear();
}

void _mlir_ciface_kvc_rt_mlir_append(kvc_rt_binding *binding,
                                     kvc_rt_memref_4d_f32 *keys,
                                     kvc_rt_memref_4d_f32 *values) {
  if (!usable(binding))
    return;
  if (keys->sizes[0] != int64_t(binding->seqs.size())) {
    fail(binding, KVC_RT_ERROR_SHAPE_MISMATCH,
         "append of batch " + std::to_string(keys->sizes[0]) +
             " to a binding of batch " + std::to_string(binding->seqs.size()));
    return;
  }
  for (size_t b = 0; b < binding->seqs.size(); ++b) {
    kvc_rt_tokens tokens{};
    tokens.num_tokens = uint32_t(keys->sizes[2]);
    tokens.dtype = KVC_RT_DTYPE_F32;
    tokens.kv_heads = uint32_t(keys->sizes[1]);
    tokens.head_dim = uint32_t(keys->sizes[3]);
    const float *k = keys->aligned + keys->offset + b * keys->strides[0];
    const float *v = values->aligned + values->offset + b * values->strides[0];
    // The runtime addresses channels contiguously; keys and values share
    // the same strides after bufferization, but check both.
    bool contiguous = keys->strides[3] == 1 && values->strides[3] == 1 &&
                      keys->strides[1] == values->strides[1] &&
                      keys->strides[2] == values->strides[2];
    if (contiguous) {
      tokens.keys = k;
      tokens.values = v;
      tokens.head_stride = uint64_t(keys->strides[1]);
      tokens.token_stride = uint64_t(keys->strides[2]);
    } else {
      size_t count = size_t(keys->sizes[1]) * keys->sizes[2] * keys->sizes[3];
      binding->scratch.resize(2 * count);
      float *ck = binding->scratch.data(), *cv = ck + count;
      size_t i = 0;
      for (int64_t h = 0; h < keys->sizes[1]; ++h)
        for (int64_t t = 0; t < keys->sizes[2]; ++t)
          for (int64_t c = 0; c < keys->sizes[3]; ++c, ++i) {
            ck[i] = k[h * keys->strides[1] + t * keys->strides[2] +
                      c * keys->strides[3]];
            cv[i] = v[h * values->strides[1] + t * values->strides[2] +
                      c * values->strides[3]];
          }
      tokens.keys = ck;
      tokens.values = cv;
    }
    if (!check(binding,
               kvc_rt_append(binding->cache, binding->seqs[b], binding->layer,
                             &tokens),
               "kvc_rt_append"))
      return;
  }
}

int32_t kvc_rt_mlir_check_layout(kvc_rt_binding *binding, int64_t pageTokens,
                                 int64_t kPageBytes, int64_t vPageBytes,
                                 int64_t residual, int64_t kvHeads,
                                 int64_t headDim) {
  if (!usable(binding))
    return 0;
  // Host code dereferences the pools: they must be host memory.
  if (binding->backend == KVC_RT_BACKEND_CUDA)
    return fail(binding, KVC_RT_ERROR_UNSUPPORTED,
                "the cache is on the CUDA backend: its pages are device "
                "memory, which code compiled for the CPU cannot read "
                "(compile with kvc-gpu-pipeline or use a CPU cache)");
  return checkLayout(binding, pageTokens, kPageBytes, vPageBytes, residual,
                     kvHeads, headDim);
}

int32_t kvc_rt_mlir_gpu_check_layout(kvc_rt_binding *binding,
                                     int64_t pageTokens, int64_t kPageBytes,
                                     int64_t vPageBytes, int64_t residual,
                                     int64_t kvHeads, int64_t headDim) {
  if (!usable(binding))
    return 0;
  return checkLayout(binding, pageTokens, kPageBytes, vPageBytes, residual,
                     kvHeads, headDim);
}


int32_t kvc_rt_mlir_check_head(kvc_rt_binding *binding, int64_t head,
                               int64_t kSide, int64_t vSide,
                               int64_t kBlockOffset, int64_t vBlockOffset) {
  if (!usable(binding))
    return 0;
  const std::string compiled =
      "compiled for K " + describeSide(kSide) + " at byte " +
      std::to_string(kBlockOffset) + ", V " + describeSide(vSide) +
      " at byte " + std::to_string(vBlockOffset);
  const int64_t heads = binding->layerView.kv_heads;
  if (head < 0 || head >= heads) {
    fail(binding, KVC_RT_ERROR_ENCODING_MISMATCH,
         "KV head " + std::to_string(head) + ": " + compiled +
             "; the cache layer has only " + std::to_string(heads) +
             " KV heads");
    return 0;
  }
  kvc_rt_head_view view;
  if (!check(binding,
             kvc_rt_head_view_get(binding->cache, binding->layer,
                                  uint32_t(head), &view),
             "kvc_rt_head_view_get"))
    return 0;
  const int64_t actualK = kvc_rt_pack_side_encoding(&view.encoding.key);
  const int64_t actualV = kvc_rt_pack_side_encoding(&view.encoding.value);
  if (actualK == kSide && actualV == vSide &&
      int64_t(view.k_block_offset) == kBlockOffset &&
      int64_t(view.v_block_offset) == vBlockOffset)
    return 1;
  fail(binding, KVC_RT_ERROR_ENCODING_MISMATCH,
       "KV head " + std::to_string(head) + ": " + compiled +
           "; the cache layer has K " + describeSide(actualK) + " at byte " +
           std::to_string(view.k_block_offset) + ", V " +
           describeSide(actualV) + " at byte " +
           std::to_string(view.v_block_offset));
  return 0;
}

int64_t kvc_rt_mlir_num_tokens(kvc_rt_binding *binding, int64_t b) {
  kvc_rt_sequence_view view;
  return sequenceView(binding, b, &view) ? int64_t(view.num_tokens) : 0;
}

int64_t kvc_rt_mlir_compressed_tokens(kvc_rt_binding *binding, int64_t b) {
  kvc_rt_sequence_view view;
  return sequenceView(binding, b, &view) ? int64_t(view.compressed_tokens)
                                         : 0;
}

void *kvc_rt_mlir_pool(kvc_rt_binding *binding, int32_t side) {
  if (!usable(binding))
    return nullptr;
  return side == 0 ? binding->layerView.k_pool : binding->layerView.v_pool;
}

const int32_t *kvc_rt_mlir_page_table(kvc_rt_binding *binding, int64_t b) {
  kvc_rt_sequence_view view;
  return sequenceView(binding, b, &view) ? view.page_table : nullptr;
}

const void *kvc_rt_mlir_residual(kvc_rt_binding *binding, int64_t b,
                                 int32_t side) {
  kvc_rt_sequence_view view;
  if (!sequenceView(binding, b, &view))
    return nullptr;
  return side == 0 ? view.k_residual : view.v_residual;
}

/// Batch entry `b` as generated kernels read it.
static bool sequenceRecord(kvc_rt_binding *binding, size_t b,
                           kvc_rt_gpu_sequence *record) {
  kvc_rt_sequence_view view;
  if (!sequenceView(binding, int64_t(b), &view))
    return false;
  record->page_table = uint64_t(uintptr_t(view.page_table_device));
  record->k_residual = uint64_t(uintptr_t(view.k_residual));
  record->v_residual = uint64_t(uintptr_t(view.v_residual));
  // n <= max_tokens, a uint32_t.
  record->num_tokens = uint32_t(view.num_tokens);
  record->compressed_tokens = uint32_t(view.compressed_tokens);
  return true;
}

/// Enqueues a copy of `bytes` of host records into `block` (backend memory,
/// grown as needed) on the cache's stream, behind the cache's earlier work
/// (pages, the page-table mirror): kernels launched on that stream
/// (kvc_rt_mlir_gpu_stream) see all of it, and no host wait is needed. The
/// block's data, or nullptr (recorded).
static const void *upload(kvc_rt_binding *binding, BackendBlock &block,
                          const void *host, size_t bytes, const char *what) {
  Backend *backend = backendOf(binding);
  if (!backend || !reserve(binding, *backend, block, bytes, what))
    return nullptr;
  kvc::rt::Status s = backend->copyToArena(block.data, host, bytes);
  if (!s.isOk()) {
    fail(binding, s.code(), std::string(what) + ": " + s.message());
    return nullptr;
  }
  return block.data;
}

/// Whether `a` and `b` hold the same records, byte for byte.
static bool sameRecords(const std::vector<kvc_rt_gpu_sequence> &a,
                        const std::vector<kvc_rt_gpu_sequence> &b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0;
}

const kvc_rt_gpu_sequence *kvc_rt_mlir_gpu_sequences(kvc_rt_binding *binding) {
  if (!usable(binding))
    return nullptr;
  for (size_t b = 0; b < binding->seqs.size(); ++b)
    if (!sequenceRecord(binding, b, &binding->hostRecords[b]))
      return nullptr;
  // Unchanged since their last copy (this function's, or the append's that
  // came with its records): no copy, which on a GPU is a transfer on the
  // stream a call of a few microseconds waits for.
  if (binding->uploadedRecords &&
      sameRecords(binding->hostRecords, binding->uploadedHostRecords))
    return binding->uploadedRecords;
  binding->uploadedRecords = nullptr;
  const auto *records = static_cast<const kvc_rt_gpu_sequence *>(
      upload(binding, binding->records, binding->hostRecords.data(),
             binding->hostRecords.size() * sizeof(kvc_rt_gpu_sequence),
             "kvc_rt_mlir_gpu_sequences"));
  if (records) {
    binding->uploadedRecords = records;
    binding->uploadedHostRecords = binding->hostRecords;
  }
  return records;
}

/// Where the sequence records start in kvc_rt_mlir_reserve_append's block:
/// past the append records, 256-byte aligned like every records block.
static size_t appendSequencesOffset(size_t batch) {
  return (batch * sizeof(kvc_rt_gpu_append) + 255) / 256 * 256;
}

const kvc_rt_gpu_append *kvc_rt_mlir_reserve_append(kvc_rt_binding *binding,
                                                    int64_t num_tokens) {
  if (!usable(binding))
    return nullptr;
  if (num_tokens < 0 || num_tokens > int64_t(UINT32_MAX)) {
    fail(binding, KVC_RT_ERROR_INVALID_ARGUMENT,
         "kvc.append of " + std::to_string(num_tokens) + " tokens");
    return nullptr;
  }
  const size_t batch = binding->seqs.size();
  binding->appendRanges.resize(batch);
  binding->hostAppendRecords.resize(batch);
  // The sequence records this block may hold are replaced (and the block
  // may move) whatever happens next.
  if (binding->uploadedRecords &&
      reinterpret_cast<const uint8_t *>(binding->uploadedRecords) !=
          binding->records.data)
    binding->uploadedRecords = nullptr;
  // The records' block first: once reserved, the tokens must reach the
  // code that writes them. It holds the append records, then the sequence
  // records after the append, which an attention later in the step reads
  // without a copy of its own (kvc_rt_mlir_gpu_sequences).
  Backend *backend = backendOf(binding);
  const size_t sequencesAt = appendSequencesOffset(batch);
  const size_t bytes = sequencesAt + batch * sizeof(kvc_rt_gpu_sequence);
  if (!backend || !reserve(binding, *backend, binding->appendRecords, bytes,
                           "kvc_rt_mlir_reserve_append"))
    return nullptr;
  if (!check(binding,
             kvc_rt_reserve_append(binding->cache, binding->layer,
                                   binding->seqs.data(), uint32_t(batch),
                                   uint32_t(num_tokens),
                                   binding->appendRanges.data()),
             "kvc_rt_reserve_append"))
    return nullptr;
  for (size_t b = 0; b < batch; ++b) {
    kvc_rt_gpu_append &record = binding->hostAppendRecords[b];
    if (!sequenceRecord(binding, b, &record.sequence))
      return nullptr;
    binding->hostRecords[b] = record.sequence;
    // Counts are at most max_tokens, a uint32_t.
    record.old_tokens = uint32_t(binding->appendRanges[b].old_tokens);
    record.old_compressed = uint32_t(binding->appendRanges[b].old_compressed);
  }
  // One copy for both.
  std::vector<uint8_t> &staged = binding->hostAppendUpload;
  staged.assign(bytes, 0);
  std::memcpy(staged.data(), binding->hostAppendRecords.data(),
              batch * sizeof(kvc_rt_gpu_append));
  std::memcpy(staged.data() + sequencesAt, binding->hostRecords.data(),
              batch * sizeof(kvc_rt_gpu_sequence));
  const auto *records = static_cast<const uint8_t *>(
      upload(binding, binding->appendRecords, staged.data(), bytes,
             "kvc_rt_mlir_reserve_append"));
  if (!records)
    return nullptr;
  binding->uploadedRecords =
      reinterpret_cast<const kvc_rt_gpu_sequence *>(records + sequencesAt);
  binding->uploadedHostRecords = binding->hostRecords;
  return reinterpret_cast<const kvc_rt_gpu_append *>(records);
}

void *kvc_rt_mlir_gpu_stream(kvc_rt_binding *binding, void *after) {
  if (!binding)
    return nullptr;
  // The cache's stream even after an error: the kernels still run (they
  // write NaN), and the function's final synchronization must cover them.
  Backend *backend = backendOf(binding);
  if (!backend)
    return nullptr;
  const kvc::rt::Status s = backend->waitFor(after);
  if (!s.isOk())
    fail(binding, s.code(), "kvc_rt_mlir_gpu_stream: " + s.message());
  return backend->stream();
}

void kvc_rt_mlir_gpu_synchronize(kvc_rt_binding *binding) {
  if (!binding)
    return;
  // Also after an error: kernels that were launched must finish before the
  // caller reuses what they write.
  Backend *backend = backendOf(binding);
  if (!backend)
    return;
  const kvc::rt::Status s = backend->synchronize();
  if (!s.isOk())
    fail(binding, s.code(), "kvc_rt_mlir_gpu_synchronize: " + s.message());
}

void *kvc_rt_mlir_gpu_workspace(kvc_rt_binding *binding, int64_t bytes) {
  if (!usable(binding))
    return nullptr;
  if (bytes < 0) {
    fail(binding, KVC_RT_ERROR_INVALID_ARGUMENT,
         "kvc_rt_mlir_gpu_workspace: " + std::to_string(bytes) + " bytes");
    return nullptr;
  }
  Backend *backend = backendOf(binding);
  if (!backend || !reserve(binding, *backend, binding->workspace, size_t(bytes),
                           "kvc_rt_mlir_gpu_workspace"))
    return nullptr;
  return binding->workspace.data;
}

int32_t *kvc_rt_mlir_gpu_counters(kvc_rt_binding *binding, int64_t count) {
  if (!usable(binding))
    return nullptr;
  constexpr int64_t kMostCounters =
      std::numeric_limits<int64_t>::max() / int64_t(sizeof(int32_t));
  if (count < 0 || count > kMostCounters) {
    fail(binding, KVC_RT_ERROR_INVALID_ARGUMENT,
         "kvc_rt_mlir_gpu_counters: " + std::to_string(count) + " counters");
    return nullptr;
  }
  Backend *backend = backendOf(binding);
  if (!backend)
    return nullptr;
  BackendBlock &block = binding->counters;
  const size_t bytes = size_t(count) * sizeof(int32_t);
  if (!block.data || block.bytes < bytes) {
    // A new block starts zero; the old one's counters were zero (every
    // launch leaves them so), so nothing is lost.
    if (!reserve(binding, *backend, block, bytes, "kvc_rt_mlir_gpu_counters"))
      return nullptr;
    const kvc::rt::Status s = backend->fillZero(block.data, block.bytes);
    if (!s.isOk()) {
      fail(binding, s.code(), "kvc_rt_mlir_gpu_counters: " + s.message());
      return nullptr;
    }
  }
  return reinterpret_cast<int32_t *>(block.data);
}

} // extern "C"
