/*===- kvc_runtime_binding.h - caches as seen by compiled code -*- C -*-===*\
 *
 * Code compiled by kvc (`kvc-cpu-pipeline`, `kvc-gpu-pipeline`) sees a
 * `!kvc.cache<B x H x ? x D>` value as a pointer to a kvc_rt_binding: one
 * layer of a runtime cache and the B sequences of a batch. The host creates
 * the binding and passes it to the compiled function; the compiled code
 * appends to it in place and reads its pages directly: CPU code on the host
 * (CPU and CPU_STAGED caches), GPU kernels on the device (CUDA caches; the
 * CPU backends work too, for tests) through the per-batch records of
 * kvc_rt_mlir_gpu_sequences.
 *
 * Errors inside compiled code cannot be returned through the model's
 * signature, so they are *sticky*: the first failure is recorded in the
 * binding, every later entry point on it does nothing (attention outputs
 * become NaN), and the host reads kvc_rt_binding_status() after the call.
 *
 * The `kvc_rt_mlir_*` functions are the entry points the compiler emits
 * calls to (names in lib/Conversion/KVCToLoops/RuntimeABI.h); memrefs are
 * passed as MLIR's C-interface descriptors. They are not meant to be called
 * by hand. A binding is used by one thread at a time (like its cache).
 * Kernel launches and device memory of GPU code go through the functions of
 * kvc_runtime_gpu.h.
\*===----------------------------------------------------------------------===*/

#ifndef KVC_RUNTIME_BINDING_H
#define KVC_RUNTIME_BINDING_H

#include "kvc_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvc_rt_binding kvc_rt_binding;

/** Binds `layer` of `cache` and the `batch` sequences `seqs` (copied): batch
 *  entry b of compiled code is sequence seqs[b]. Any backend: code compiled
 *  for the CPU refuses a CUDA cache at run time (kvc_rt_mlir_check_layout).
 *  The cache must outlive the binding (destroy the binding first: it frees
 *  backend memory of the cache's backend). Errors: NULL_POINTER,
 *  INVALID_HANDLE, INVALID_ARGUMENT (layer, batch == 0), INVALID_SEQUENCE,
 *  OUT_OF_MEMORY. */
KVC_RT_API kvc_rt_status kvc_rt_binding_create(kvc_rt_cache *cache,
                                               uint32_t layer,
                                               const kvc_rt_seq *seqs,
                                               uint32_t batch,
                                               kvc_rt_binding **out);

/** Destroys a binding (not the cache or its sequences). NULL is a no-op. */
KVC_RT_API void kvc_rt_binding_destroy(kvc_rt_binding *binding);

/** KVC_RT_OK, or the first error compiled code hit on this binding. */
KVC_RT_API kvc_rt_status kvc_rt_binding_status(const kvc_rt_binding *binding);

/** The message of that error ("" when OK). */
KVC_RT_API const char *kvc_rt_binding_error(const kvc_rt_binding *binding);

/** Clears the sticky error (e.g. after the host fixed the cause). */
KVC_RT_API void kvc_rt_binding_clear_error(kvc_rt_binding *binding);

/*===------------------- Entry points for compiled code ------------------===*/

/** MLIR's C-interface descriptor of a memref<?x?x?x?xf32>. */
typedef struct kvc_rt_memref_4d_f32 {
  float *allocated, *aligned;
  int64_t offset, sizes[4], strides[4];
} kvc_rt_memref_4d_f32;

/** kvc.append: keys/values are [batch][kv_heads][tokens][head_dim]. Batch
 *  entries are appended in order; if entry b fails, entries before b keep
 *  their new tokens and the error is recorded. */
KVC_RT_API void _mlir_ciface_kvc_rt_mlir_append(kvc_rt_binding *binding,
                                                kvc_rt_memref_4d_f32 *keys,
                                                kvc_rt_memref_4d_f32 *values);

/** For code that reads the pages on the host (kvc-cpu-pipeline): nonzero
 *  when the bound layer has the page tokens, K and V *page* byte sizes (all
 *  heads' blocks together: kv_heads * block bytes when every head has the
 *  same encoding), residual window and shape the code was compiled for;
 *  otherwise records ENCODING_MISMATCH and returns 0. Records UNSUPPORTED
 *  and returns 0 when the cache is on the CUDA backend (its pages are device
 *  memory, which host code cannot read). */
KVC_RT_API int32_t kvc_rt_mlir_check_layout(kvc_rt_binding *binding,
                                            int64_t page_tokens,
                                            int64_t k_page_bytes,
                                            int64_t v_page_bytes,
                                            int64_t residual, int64_t kv_heads,
                                            int64_t head_dim);

/** The same check for code whose kernels read the pages
 *  (kvc-gpu-pipeline): every backend is accepted. */
KVC_RT_API int32_t kvc_rt_mlir_gpu_check_layout(kvc_rt_binding *binding,
                                                int64_t page_tokens,
                                                int64_t k_page_bytes,
                                                int64_t v_page_bytes,
                                                int64_t residual,
                                                int64_t kv_heads,
                                                int64_t head_dim);

/** A side encoding as one int64 *side descriptor* (what compiled code passes
 *  to kvc_rt_mlir_check_head):
 *    kind | bits << 8 | axis << 16 | fp8_format << 24 | group << 32
 *  kind, bits, axis and fp8_format take 8 bits each (every valid encoding's
 *  do), group the upper 32 bits. Unused fields are 0, as in
 *  kvc_rt_side_encoding. The one definition, for the compiler and tests. */
static inline int64_t
kvc_rt_pack_side_encoding(const kvc_rt_side_encoding *side) {
  uint64_t packed = (uint64_t)(side->kind & 0xFFu) |
                    ((uint64_t)(side->bits & 0xFFu) << 8) |
                    ((uint64_t)(side->axis & 0xFFu) << 16) |
                    ((uint64_t)(side->fp8_format & 0xFFu) << 24) |
                    ((uint64_t)side->group << 32);
  return (int64_t)packed;
}

/** The inverse of kvc_rt_pack_side_encoding. */
static inline kvc_rt_side_encoding
kvc_rt_unpack_side_encoding(int64_t descriptor) {
  uint64_t packed = (uint64_t)descriptor;
  kvc_rt_side_encoding side;
  side.kind = (uint32_t)(packed & 0xFFu);
  side.bits = (uint32_t)((packed >> 8) & 0xFFu);
  side.axis = (uint32_t)((packed >> 16) & 0xFFu);
  side.fp8_format = (uint32_t)((packed >> 24) & 0xFFu);
  side.group = (uint32_t)(packed >> 32);
  return side;
}

/** Nonzero when KV head `head` of the bound layer has exactly the side
 *  encodings `k_side` / `v_side` (kvc_rt_pack_side_encoding descriptors) and
 *  its K / V blocks start at byte `k_block_offset` / `v_block_offset` of a
 *  page; otherwise (also for a head out of range) records ENCODING_MISMATCH
 *  with a message naming the head, the compiled and the actual encodings,
 *  and returns 0. Compiled code calls it once per head after
 *  kvc_rt_mlir_check_layout. */
KVC_RT_API int32_t kvc_rt_mlir_check_head(kvc_rt_binding *binding,
                                          int64_t head, int64_t k_side,
                                          int64_t v_side,
                                          int64_t k_block_offset,
                                          int64_t v_block_offset);

/** Tokens / compressed tokens of batch entry `b` (0 after an error). */
KVC_RT_API int64_t kvc_rt_mlir_num_tokens(kvc_rt_binding *binding, int64_t b);
KVC_RT_API int64_t kvc_rt_mlir_compressed_tokens(kvc_rt_binding *binding,
                                                 int64_t b);

/* Runtime memory is returned as raw pointers (memrefs returned by calls
 * would be freed by the compiled code's buffer deallocation). NULL after an
 * error. */

/** The layer's whole K (side 0) or V (side 1) pool (head h's block of page
 *  p at p * page_bytes + that head's block offset), in backend memory
 *  (device memory on CUDA). */
KVC_RT_API void *kvc_rt_mlir_pool(kvc_rt_binding *binding, int32_t side);

/** The int32 page table of batch entry `b` (host memory); entries of pages
 *  released by eviction are KVC_RT_PAGE_HOLE (every token there is dead in
 *  every head: skip the page). */
KVC_RT_API const int32_t *kvc_rt_mlir_page_table(kvc_rt_binding *binding,
                                                 int64_t b);

/** The fp16 residual buffers of batch entry `b`, all KV heads (head h at
 *  h * residual_head_bytes), in backend memory. */
KVC_RT_API const void *kvc_rt_mlir_residual(kvc_rt_binding *binding, int64_t b,
                                            int32_t side);

/*===------------------------------ Eviction -----------------------------===*/

/** MLIR's C-interface descriptor of a memref<?x?x?xf32>. */
typedef struct kvc_rt_memref_3d_f32 {
  float *allocated, *aligned;
  int64_t offset, sizes[3], strides[3];
} kvc_rt_memref_3d_f32;

/** kvc.evict: applies the policy (kind: kvc_rt_evict_kind; sink, window,
 *  budget as in kvc_rt_evict_policy) to every batch entry b in order,
 *  kvc_rt_evict(cache, seqs[b], layer, policy, scores[b], n): `scores` is
 *  [batch][kv_heads][n] with n = sizes[2] equal to every entry's length
 *  (any strides; the accumulated H2O mass or SnapKV's observation-window
 *  mass). Streaming ignores the scores: `scores` may be NULL or any
 *  descriptor (the lowering passes an empty memref<0x0x0xf32>). Records
 *  INVALID_ARGUMENT for a parameter out of uint32 range or a bad policy,
 *  SHAPE_MISMATCH for a scores shape other than [batch][kv_heads][n], and
 *  kvc_rt_evict's errors; if entry b fails, entries before b stay evicted
 *  (like kvc_rt_mlir_append). */
KVC_RT_API void _mlir_ciface_kvc_rt_mlir_evict(kvc_rt_binding *binding,
                                               kvc_rt_memref_3d_f32 *scores,
                                               int64_t kind, int64_t sink,
                                               int64_t window, int64_t budget);

/** MLIR's C-interface descriptor of a memref<?xi64>. */
typedef struct kvc_rt_memref_1d_i64 {
  int64_t *allocated, *aligned;
  int64_t offset, sizes[1], strides[1];
} kvc_rt_memref_1d_i64;

/** kvc.evict with per-KV-head budgets (`#kvc.evict<..., head_budgets =
 *  ...>`): as _mlir_ciface_kvc_rt_mlir_evict, but each batch entry is
 *  kvc_rt_evict_heads(..., head_budgets) with `budgets` holding one budget
 *  per KV head (any stride) and the policy's budget their maximum. Records
 *  SHAPE_MISMATCH when `budgets` does not have kv_heads entries, and
 *  INVALID_ARGUMENT for a budget out of uint32 range, besides
 *  _mlir_ciface_kvc_rt_mlir_evict's errors. */
KVC_RT_API void _mlir_ciface_kvc_rt_mlir_evict_heads(
    kvc_rt_binding *binding, kvc_rt_memref_3d_f32 *scores, int64_t kind,
    int64_t sink, int64_t window, kvc_rt_memref_1d_i64 *budgets);

/** kvc.evict of a two-tier policy (`#kvc.evict<..., demote_key, demote_value>`):
 *  as _mlir_ciface_kvc_rt_mlir_evict_heads (`budgets`: one per KV head), but
 *  each batch entry is kvc_rt_evict_demote with the demotion encodings given
 *  as kvc_rt_pack_side_encoding descriptors. Records kvc_rt_evict_demote's
 *  errors. */
KVC_RT_API void _mlir_ciface_kvc_rt_mlir_evict_demote(
    kvc_rt_binding *binding, kvc_rt_memref_3d_f32 *scores, int64_t kind,
    int64_t sink, int64_t window, kvc_rt_memref_1d_i64 *budgets,
    int64_t demote_key, int64_t demote_value);

/** For compiled attention over a two-tier cache: the demoted-page table of
 *  batch entry `b` (kvc_rt_sequence_view.demoted_pages, host memory), or
 *  NULL when that sequence keeps no demoted token in the bound layer (its
 *  evicted tokens, if any, are dropped). When the sequence demotes with
 *  other encodings than the compiled `demote_key` / `demote_value`
 *  descriptors, records ENCODING_MISMATCH and returns NULL. */
KVC_RT_API const uint8_t *const *
kvc_rt_mlir_demoted_pages(kvc_rt_binding *binding, int64_t b,
                          int64_t demote_key, int64_t demote_value);

/** For host code: the live bitmap of KV head `head` of batch entry `b`
 *  (host memory; token t is live iff bit t % 8 of byte t / 8 is 1; valid
 *  until the next append, evict or free of that sequence), or NULL when no
 *  token of that (sequence, layer) was ever evicted, so that every token is
 *  live. Also NULL after an error (recorded: b or head out of range,
 *  INVALID_ARGUMENT; a dead sequence); attention outputs are NaN then
 *  anyway. Generated loops skip tokens whose bit is 0. */
KVC_RT_API const uint8_t *kvc_rt_mlir_live_bitmap(kvc_rt_binding *binding,
                                                  int64_t b, int64_t head);

/*===------------------- Entry points for GPU host code ------------------===*/

/** One batch entry of a binding as generated GPU kernels read it. Addresses
 *  are backend memory: device memory on CUDA, host memory on the CPU
 *  backends (CPU_STAGED: its "backend" copies). */
typedef struct kvc_rt_gpu_sequence {
  uint64_t page_table;        /**< the sequence's int32 page-table row
                                   (kvc_rt_sequence_view::page_table_device;
                                   entries past c(n)'s pages are -1, and so
                                   are holes, KVC_RT_PAGE_HOLE) */
  uint64_t k_residual;        /**< its fp16 K residual buffers (all KV heads,
                                   residual_head_bytes apart); 0 when R == 0 */
  uint64_t v_residual;        /**< the same for V */
  uint32_t num_tokens;        /**< n */
  uint32_t compressed_tokens; /**< c(n) */
} kvc_rt_gpu_sequence;        /* 32 bytes */

#if defined(__cplusplus)
static_assert(sizeof(kvc_rt_gpu_sequence) == 32 &&
                  offsetof(kvc_rt_gpu_sequence, k_residual) == 8 &&
                  offsetof(kvc_rt_gpu_sequence, v_residual) == 16 &&
                  offsetof(kvc_rt_gpu_sequence, num_tokens) == 24 &&
                  offsetof(kvc_rt_gpu_sequence, compressed_tokens) == 28,
              "kvc_rt_gpu_sequence is read by generated kernels");
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(kvc_rt_gpu_sequence) == 32 &&
                   offsetof(kvc_rt_gpu_sequence, k_residual) == 8 &&
                   offsetof(kvc_rt_gpu_sequence, v_residual) == 16 &&
                   offsetof(kvc_rt_gpu_sequence, num_tokens) == 24 &&
                   offsetof(kvc_rt_gpu_sequence, compressed_tokens) == 28,
               "kvc_rt_gpu_sequence is read by generated kernels");
#endif

/** Refreshes and returns the binding's `batch` records (entry b describes
 *  seqs[b] now) in backend memory, 256-byte aligned. On CUDA the copy is
 *  enqueued on the cache's stream behind the cache's earlier work (pages
 *  and page tables written by appends): kernels launched on that stream
 *  (kvc_rt_mlir_gpu_stream) see all of it; other readers synchronize the
 *  cache first (kvc_rt_cache_synchronize). On the CPU backends it is
 *  complete when it returns. Records unchanged since their last copy (this
 *  function's, or kvc_rt_mlir_reserve_append's, which copies the records
 *  after the append with its own) are not copied again: a decode step's
 *  attention after its append makes no copy. The records stay valid until
 *  the next call of this function or of kvc_rt_mlir_reserve_append, or the
 *  destruction of the binding; a later call is ordered behind kernels on
 *  the cache's stream, readers on other streams must be done. NULL after an
 * error (sticky, like the other entry points): INVALID_HANDLE /
 * INVALID_SEQUENCE (the cache or a sequence is gone), OUT_OF_MEMORY, BACKEND.
 */
KVC_RT_API const kvc_rt_gpu_sequence *
kvc_rt_mlir_gpu_sequences(kvc_rt_binding *binding);

/** One batch entry of a reserved append, as generated append code reads
 *  it: the first 32 bytes are the entry's kvc_rt_gpu_sequence after the
 *  append (n1, c(n1)), then n0 and c(n0) before it. */
typedef struct kvc_rt_gpu_append {
  kvc_rt_gpu_sequence sequence;
  uint32_t old_tokens;     /**< n0 */
  uint32_t old_compressed; /**< c(n0) */
} kvc_rt_gpu_append;       /* 40 bytes */

#if defined(__cplusplus)
static_assert(sizeof(kvc_rt_gpu_append) == 40 &&
                  offsetof(kvc_rt_gpu_append, old_tokens) == 32 &&
                  offsetof(kvc_rt_gpu_append, old_compressed) == 36,
              "kvc_rt_gpu_append is read by generated code");
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(kvc_rt_gpu_append) == 40 &&
                   offsetof(kvc_rt_gpu_append, old_tokens) == 32 &&
                   offsetof(kvc_rt_gpu_append, old_compressed) == 36,
               "kvc_rt_gpu_append is read by generated code");
#endif

/** kvc.append written by generated code (kvc-lower-to-gpu; kvc-lower-to-loops
 *  with append=generated): reserves `num_tokens` tokens in every sequence
 *  of the binding (kvc_rt_reserve_append: all or none) and returns the
 *  batch's records in backend memory (256-byte aligned; host memory on the
 *  CPU backends). On CUDA the pages' preparation and the records' upload
 *  are enqueued on the cache's stream, as kvc_rt_mlir_gpu_sequences says:
 *  kernels launched on it (kvc_rt_mlir_gpu_stream) then write the tokens
 *  as kvc_rt_reserve_append says; on the CPU backends everything is
 *  complete when it returns. The
 *  records stay valid until the next call of this function or the
 *  destruction of the binding. NULL after an error (sticky): INVALID_ARGUMENT
 *  for num_tokens < 0 or beyond uint32, OUT_OF_MEMORY for the records, and
 *  kvc_rt_reserve_append's errors, after which nothing is reserved; a
 *  BACKEND error of the records' upload comes after the reservation (the
 *  device is unusable then; the tokens stay reserved and unwritten). */
KVC_RT_API const kvc_rt_gpu_append *
kvc_rt_mlir_reserve_append(kvc_rt_binding *binding, int64_t num_tokens);

/** The live bitmaps for kernels: refreshes and returns the binding's
 *  [batch][kv_heads] uint64 addresses, in backend memory (256-byte
 *  aligned): entry b * kv_heads + h is the address of the bitmap of KV head
 *  h of seqs[b] (bit layout of kvc_rt_mlir_live_bitmap; bits for tokens
 *  0 .. n-1), or 0 when no token of that sequence was ever evicted in the
 *  bound layer. The bitmaps are copies uploaded by this call into backend
 *  memory owned by the binding (ceil(n / 8) bytes per head, n the entry's
 *  length now), enqueued on the cache's stream as by
 *  kvc_rt_mlir_gpu_sequences; they describe the sequences as of this
 *  call and stay valid until its next call or the destruction of the
 *  binding. NULL after an error (sticky): INVALID_HANDLE /
 *  INVALID_SEQUENCE, OUT_OF_MEMORY, BACKEND. */
KVC_RT_API const uint64_t *
kvc_rt_mlir_gpu_live_bitmaps(kvc_rt_binding *binding);

/** Scratch memory of at least `bytes` (0 allowed) in backend memory owned by
 *  the binding, 256-byte aligned, uninitialized. It grows on demand: a
 *  larger request frees the previous block (after the cache's pending
 *  operations; its contents are lost) and returns a new one; a smaller or
 *  equal one returns the same block. Freed with the binding. NULL + sticky
 *  OUT_OF_MEMORY when it cannot be allocated, INVALID_ARGUMENT for
 *  bytes < 0. */
KVC_RT_API void *kvc_rt_mlir_gpu_workspace(kvc_rt_binding *binding,
                                           int64_t bytes);

/** At least `count` (0 allowed) int32 counters in backend memory owned by
 *  the binding, 256-byte aligned, zero when first handed out. They are for
 *  kernels that count arrivals (the split attention kernels of
 *  combine=fused: a block per split counts in, the last one merges the
 *  splits): such a kernel must leave every counter it used at zero when it
 *  ends, so that the next launch finds them zero. Grows on demand: a
 *  larger request frees the previous block (after the cache's pending
 *  operations) and returns a new, zero-filled one; a smaller or equal one
 *  returns the same block. Freed with the binding. NULL + sticky
 *  OUT_OF_MEMORY when it cannot be allocated, INVALID_ARGUMENT for
 *  count < 0 or a count whose bytes overflow. */
KVC_RT_API int32_t *kvc_rt_mlir_gpu_counters(kvc_rt_binding *binding,
                                             int64_t count);

/** The stream generated kernels of this binding launch on: the cache's
 *  CUDA stream (kvc_rt_cache_stream), so that they run behind the cache's
 *  own copies and the records above without a host wait; NULL (the legacy
 *  default stream) on the CPU backends, for a NULL binding and once the
 *  cache is destroyed (INVALID_HANDLE). After an earlier error it is still
 *  the cache's stream: the kernels, told to write NaN, run there and the
 *  final kvc_rt_mlir_gpu_synchronize covers them. When `after` is a stream
 *  other than the cache's, the cache's stream first waits (on the device)
 *  for the work enqueued on `after` so far: generated code passes the
 *  previous kvc op's stream, which orders the ops of a function whose
 *  caches differ. Errors (sticky): BACKEND (the event or the wait failed;
 *  the stream is returned all the same). */
KVC_RT_API void *kvc_rt_mlir_gpu_stream(kvc_rt_binding *binding, void *after);

/** Waits until the work enqueued on the binding's stream (the cache's) has
 *  completed: generated functions call it once before they return, so that
 *  their results are complete then. Runs after an earlier error too
 *  (launched kernels must finish); a failure is recorded (sticky BACKEND,
 *  or INVALID_HANDLE once the cache is gone). */
KVC_RT_API void kvc_rt_mlir_gpu_synchronize(kvc_rt_binding *binding);

#ifdef __cplusplus
}
#endif

#endif /* KVC_RUNTIME_BINDING_H */
