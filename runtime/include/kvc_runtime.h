/*===- kvc_runtime.h - kvc paged KV-cache runtime, C ABI -------*- C -*-===*\
 *
 * The runtime that compiler-generated code (and serving code) links
 * against: a paged allocator for *compressed* KV caches whose keys and
 * values use independent encodings (decoupled compression).
 *
 * Model
 * -----
 * A cache has `num_layers` layers. Every layer has its own encoding
 * (key side, value side, residual window R) -- or one per KV head
 * (`encodings_per_layer`), all heads of a layer sharing R -- and two page
 * pools, one for K and one for V, whose page sizes follow the encodings. A
 * *page* holds `page_tokens` (T) consecutive tokens of one sequence for all
 * `kv_heads` heads of one layer: it is the `kv_heads` blocks of heads
 * 0 .. kv_heads-1 back to back, head h's block at the sum of the block sizes
 * of heads 0 .. h-1 (`h * block_bytes` when every head has the same
 * encoding); each block is laid out exactly as docs/layout.md (version 2,
 * sections 4 and 4.1) says for T tokens of one (layer, kv_head) with that
 * head's encoding. One page index addresses both pools: logical page i of a
 * sequence in layer l is `page_table[i]`, its K bytes are at
 * `k_pool + page_table[i] * k.page_bytes` and its V bytes at
 * `v_pool + page_table[i] * v.page_bytes` (kvc_rt_head_view_get gives each
 * head's block offsets).
 *
 * Tokens follow the residual rule (layout.md section 5): of n tokens of a
 * (layer, sequence), the first c(n) = floor(n/R)*R are compressed in pages
 * (token t in logical page t / T, slot t % T) and the remaining n - c(n)
 * tokens are fp16 in a per-(layer, sequence) staging buffer of
 * `kv_heads` x [R][D] fp16 per side (row i holds token c(n) + i). When an
 * append makes n reach a multiple of R the staged tokens are compressed
 * with the numerics library (the one definition of the encodings).
 * The values that get compressed are the fp16 staged values, so the
 * contents of a cache depend only on the token sequence, never on how
 * appends were split: the dequantized view of n appended tokens x is
 * `kvc::numerics::simulateCacheSide(fp16(x), n, D, side, R)`.
 *
 * Sequences can be forked: the child shares every page of the parent
 * (reference counts), its residual rows are copied, and the first append
 * that writes into a shared partially filled page copies that page first
 * (copy-on-write). Pages come from pools allocated once, at creation, in
 * one arena per cache (plain cudaMalloc on the CUDA backend, never managed
 * memory); page allocation and release are O(1) (free lists).
 *
 * Eviction (kvc_rt_evict) drops tokens per KV head: every (sequence,
 * layer, kv head) has a live bitmap, and a page none of whose tokens is live
 * in any head becomes a hole in the page table (KVC_RT_PAGE_HOLE) and goes
 * back to the pool. Nothing is copied or moved: positions never shift, a
 * live token keeps its page and slot, and later appends continue at n.
 *
 * Conventions
 * -----------
 * - Every function returns a kvc_rt_status. On error nothing observable
 *   changed (the cache is as before the call; outputs are not written) and
 *   nothing leaked. The message is available from kvc_rt_last_error() on
 *   the calling thread and, for calls that take a valid cache, from
 *   kvc_rt_cache_last_error(). The only exception is KVC_RT_ERROR_BACKEND
 *   (a CUDA call failed): the CUDA context is then usually unusable, and
 *   the contents of the sequence being modified are unspecified.
 * - Handles: kvc_rt_cache* is opaque; a destroyed or unknown pointer is
 *   reported as KVC_RT_ERROR_INVALID_HANDLE (the runtime keeps a registry of
 *   live caches). A kvc_rt_seq is a 64-bit id (0 is never valid); a freed
 *   id is never reused, so a second free of the same id is reported as
 *   KVC_RT_ERROR_INVALID_SEQUENCE, never frees another sequence.
 * - Thread safety: different caches can be used from different threads
 *   concurrently. Calls on one cache must be serialized by the caller
 *   (a cache holds no lock). Free functions that take no cache
 *   (kvc_rt_config_init, kvc_rt_plan_capacity, ...) are thread-safe.
 * - Memory: "backend memory" is host memory on the CPU backends and device
 *   memory on the CUDA backend. Input tokens and all output buffers of the
 *   functions below are host memory. The runtime never takes ownership of
 *   caller memory; it copies what it keeps.
 * - The runtime never throws and never aborts on bad input (a violated
 *   internal invariant, i.e. a runtime bug, may abort).
\*===----------------------------------------------------------------------===*/

#ifndef KVC_RUNTIME_H
#define KVC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define KVC_RT_API __attribute__((visibility("default")))
#else
#define KVC_RT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Version of this ABI; bumped on any incompatible change of the structs or
 *  functions below. kvc_rt_abi_version() returns the library's. */
#define KVC_RT_ABI_VERSION 4
/** Version of the page layout (docs/layout.md) of the pages. */
#define KVC_RT_LAYOUT_VERSION 2
/** Default page size in tokens (kvc_rt_config_init). */
#define KVC_RT_DEFAULT_PAGE_TOKENS 64
/** A page-table entry whose page was released by eviction (every token of
 *  the page is evicted in every KV head). Page tables are int32, so a hole
 *  reads as -1 (UINT32_MAX as uint32_t), the same value as the entries past
 *  a sequence's pages: a hole is an entry below num_pages holding it. */
#define KVC_RT_PAGE_HOLE (-1)
/** Never a valid sequence id. */
#define KVC_RT_SEQ_INVALID ((kvc_rt_seq)0)

/*===--------------------------- Status codes ----------------------------===*/

typedef enum kvc_rt_status {
  KVC_RT_OK = 0,
  /** A required pointer argument is NULL. */
  KVC_RT_ERROR_NULL_POINTER = 1,
  /** An argument is out of range or malformed (layer index, head index,
   *  dtype, zero sizes, an invalid encoding or config). */
  KVC_RT_ERROR_INVALID_ARGUMENT = 2,
  /** The kvc_rt_cache* is not a live cache (destroyed, never created). */
  KVC_RT_ERROR_INVALID_HANDLE = 3,
  /** The kvc_rt_seq is not a live sequence of this cache (already freed:
   *  double free; never created; belongs to another cache). */
  KVC_RT_ERROR_INVALID_SEQUENCE = 4,
  /** Appended tokens do not match the cache's shape (kv_heads, head_dim). */
  KVC_RT_ERROR_SHAPE_MISMATCH = 5,
  /** A layer's encoding / page size differs from what the caller expects
   *  (kvc_rt_cache_check_layer). */
  KVC_RT_ERROR_ENCODING_MISMATCH = 6,
  /** A per-sequence limit would be exceeded: appending past max_tokens,
   *  more live sequences than max_sequences, an output buffer too small. */
  KVC_RT_ERROR_CAPACITY_EXCEEDED = 7,
  /** A page pool is exhausted, or allocating the arena / host metadata
   *  failed. */
  KVC_RT_ERROR_OUT_OF_MEMORY = 8,
  /** The backend is not available (built without CUDA, no CUDA device). */
  KVC_RT_ERROR_UNSUPPORTED = 9,
  /** A CUDA runtime call failed (see the conventions above). */
  KVC_RT_ERROR_BACKEND = 10,
  /** kvc_rt_cache_verify found a broken invariant (a runtime bug). */
  KVC_RT_ERROR_INTERNAL = 11
} kvc_rt_status;

/*===------------------------------ Encodings ----------------------------===*/

/** Side encodings (layout.md section 1). */
typedef enum kvc_rt_side_kind {
  KVC_RT_SIDE_FP16 = 0,  /**< plain fp16, `#kvc.plain` */
  KVC_RT_SIDE_QUANT = 1, /**< group quantization, `#kvc.quant` */
  KVC_RT_SIDE_FP8 = 2    /**< fp8 + per-token fp16 scale, `#kvc.fp8` */
} kvc_rt_side_kind;

typedef enum kvc_rt_quant_axis {
  KVC_RT_AXIS_CHANNEL = 0, /**< a group is G tokens of one channel (keys) */
  KVC_RT_AXIS_TOKEN = 1    /**< a group is G channels of one token (values) */
} kvc_rt_quant_axis;

typedef enum kvc_rt_fp8_format {
  KVC_RT_FP8_E4M3 = 0,
  KVC_RT_FP8_E5M2 = 1
} kvc_rt_fp8_format;

/** One side (K or V). Fields not used by `kind` must be 0. */
typedef struct kvc_rt_side_encoding {
  uint32_t kind;       /**< kvc_rt_side_kind */
  uint32_t bits;       /**< QUANT: 2, 3, 4 or 8 */
  uint32_t axis;       /**< QUANT: kvc_rt_quant_axis */
  uint32_t group;      /**< QUANT: G, a positive multiple of 32 */
  uint32_t fp8_format; /**< FP8: kvc_rt_fp8_format */
} kvc_rt_side_encoding;

/** A layer's (or one KV head's) encoding,
 *  `#kvc.encoding<key, value, residual>`. */
typedef struct kvc_rt_encoding {
  kvc_rt_side_encoding key;
  kvc_rt_side_encoding value;
  uint32_t residual; /**< R; 0 compresses every token at once (not allowed
                          with channel-axis quantization) */
} kvc_rt_encoding;

/*===---------------------------- Configuration --------------------------===*/

typedef enum kvc_rt_backend {
  /** Host memory, written in place. */
  KVC_RT_BACKEND_CPU = 0,
  /** Device memory of one CUDA device (cudaMalloc), copies on one stream. */
  KVC_RT_BACKEND_CUDA = 1,
  /** Host memory that the runtime treats like device memory: every access
   *  goes through copies and the page tables have a separate mirror, as on
   *  CUDA. A testing aid that runs the device code paths without a GPU. */
  KVC_RT_BACKEND_CPU_STAGED = 2
} kvc_rt_backend;

/** Everything a cache is created from. Use kvc_rt_config_init first. */
typedef struct kvc_rt_cache_config {
  uint32_t backend;         /**< kvc_rt_backend */
  int32_t device;           /**< CUDA device ordinal (CUDA backend only) */
  uint32_t num_layers;      /**< > 0 */
  uint32_t kv_heads;        /**< > 0 */
  uint32_t head_dim;        /**< D > 0 */
  uint32_t page_tokens;     /**< T: a positive multiple of 32 and of every
                                 channel-axis group */
  uint32_t max_sequences;   /**< live sequences at once (> 0) */
  uint32_t max_tokens;      /**< tokens per sequence and layer (> 0) */
  uint32_t pages_per_layer; /**< pages in each layer's K and V pool (> 0) */
  /** How many encodings each layer has: 1 (0 means 1, so zero-initialised
   *  configs keep working; kvc_rt_config_init sets 1) = one for all its
   *  heads, or `kv_heads` = one per KV head. Anything else is
   *  INVALID_ARGUMENT. */
  uint32_t encodings_per_layer;
  /** num_layers * encodings_per_layer encodings, layer-major: with one per
   *  head, head h of layer l has `encodings[l * kv_heads + h]`. Copied by
   *  kvc_rt_cache_create. Each must be valid for head_dim and page_tokens,
   *  and all heads of a layer must have the same `residual`. */
  const kvc_rt_encoding *encodings;
} kvc_rt_cache_config;

/** Memory a configuration takes (kvc_rt_config_footprint). */
typedef struct kvc_rt_footprint {
  /** The arena in backend memory: K and V pools, residual staging, and on
   *  device backends the page-table mirror (alignment padding included). */
  uint64_t backend_bytes;
  uint64_t pool_bytes;    /**< K and V pools of all layers (part of it) */
  uint64_t staging_bytes; /**< residual staging of all layers (part of it) */
  /** Host bookkeeping: page tables, reference counts, free lists, sequence
   *  records, scratch buffers. */
  uint64_t host_metadata_bytes;
} kvc_rt_footprint;

/** Result of kvc_rt_plan_capacity. */
typedef struct kvc_rt_capacity_plan {
  uint32_t max_sequences;   /**< how many sequences fit */
  uint32_t pages_per_layer; /**< pool size that holds them */
  uint32_t pages_per_sequence; /**< pages one full sequence takes per layer */
  uint64_t bytes_per_sequence; /**< backend bytes one sequence takes: its
                                    pages in every layer and its staging */
  kvc_rt_footprint footprint;  /**< of the planned configuration */
} kvc_rt_capacity_plan;

/** The name of a status ("KVC_RT_ERROR_OUT_OF_MEMORY"); a static string,
 *  "KVC_RT_UNKNOWN_STATUS" for values outside the enum. Thread-safe. */
KVC_RT_API const char *kvc_rt_status_name(kvc_rt_status status);

/** The message of the most recent call on this thread: "" if it succeeded.
 *  The string is owned by the runtime (thread-local) and stays valid until
 *  the next runtime call on this thread. Never NULL. */
KVC_RT_API const char *kvc_rt_last_error(void);

/** KVC_RT_ABI_VERSION of the library (compare with the header's). */
KVC_RT_API uint32_t kvc_rt_abi_version(void);

/** Fills `config` with defaults: CPU backend, device 0, page_tokens
 *  KVC_RT_DEFAULT_PAGE_TOKENS, encodings_per_layer 1, everything else
 *  0 / NULL (the caller must
 *  set num_layers, kv_heads, head_dim, max_sequences, max_tokens,
 *  pages_per_layer and encodings).
 *  Errors: NULL_POINTER. */
KVC_RT_API kvc_rt_status kvc_rt_config_init(kvc_rt_cache_config *config);

/** Checks an encoding for a head dimension and page size with the numerics
 *  library's rules (bits, groups, residual, page tokens); the message names
 *  the violated rule. Errors: NULL_POINTER, INVALID_ARGUMENT. */
KVC_RT_API kvc_rt_status kvc_rt_encoding_validate(
    const kvc_rt_encoding *encoding, uint32_t head_dim, uint32_t page_tokens);

/** Checks `config` completely (sizes, encodings_per_layer, every layer's
 *  and head's encoding, one residual per layer) without
 *  allocating anything. Errors: NULL_POINTER, INVALID_ARGUMENT,
 *  UNSUPPORTED (backend not compiled in). */
KVC_RT_API kvc_rt_status kvc_rt_config_validate(
    const kvc_rt_cache_config *config);

/** The exact memory kvc_rt_cache_create(config) reserves (backend arena) and
 *  allocates on the host. Errors: as kvc_rt_config_validate (the device
 *  itself is not probed). */
KVC_RT_API kvc_rt_status kvc_rt_config_footprint(
    const kvc_rt_cache_config *config, kvc_rt_footprint *out);

/** Capacity planning: how many sequences of `tokens_per_sequence` tokens fit
 *  in `budget_bytes` of backend memory with the layers, heads, head_dim,
 *  page size and encodings of `config` (its max_sequences, max_tokens and
 *  pages_per_layer are ignored). The plan assumes unshared sequences (forks
 *  share pages, so more fit) and sizes every layer's pools for the layer
 *  that needs the most pages. With plan->max_sequences > 0, a config with
 *  max_sequences = plan->max_sequences, max_tokens = tokens_per_sequence and
 *  pages_per_layer = plan->pages_per_layer has a footprint whose
 *  backend_bytes <= budget_bytes, and that many sequences can each hold
 *  tokens_per_sequence tokens in every layer at the same time.
 *  plan->max_sequences == 0 (status OK) means not even one fits.
 *  Errors: NULL_POINTER, INVALID_ARGUMENT (also tokens_per_sequence == 0). */
KVC_RT_API kvc_rt_status kvc_rt_plan_capacity(
    const kvc_rt_cache_config *config, uint64_t budget_bytes,
    uint32_t tokens_per_sequence, kvc_rt_capacity_plan *plan);

/** Backend availability: OK, or UNSUPPORTED with a message (CUDA not
 *  compiled in, no device, bad ordinal). Errors: INVALID_ARGUMENT. */
KVC_RT_API kvc_rt_status kvc_rt_backend_available(uint32_t backend,
                                                  int32_t device);

/*===------------------------------ Caches -------------------------------===*/

typedef struct kvc_rt_cache kvc_rt_cache;

/** Creates a cache: validates `config`, allocates the whole arena and all
 *  host metadata up front (nothing is allocated later except transient
 *  buffers of the numerics library, of eviction and of batched
 *  reservations (kvc_rt_reserve_append), and the live bitmaps
 *  of sequences that evict, see kvc_rt_evict). On success *out owns the
 *  cache until kvc_rt_cache_destroy; on error *out is not written.
 *  Errors: NULL_POINTER, INVALID_ARGUMENT, UNSUPPORTED, OUT_OF_MEMORY,
 *  BACKEND. */
KVC_RT_API kvc_rt_status kvc_rt_cache_create(const kvc_rt_cache_config *config,
                                             kvc_rt_cache **out);

/** Destroys a cache and all its sequences, releasing the arena (waits for
 *  the CUDA stream first). Views and pointers obtained from it dangle.
 *  Errors: NULL_POINTER, INVALID_HANDLE (e.g. destroyed twice). */
KVC_RT_API kvc_rt_status kvc_rt_cache_destroy(kvc_rt_cache *cache);

/** The message of the most recent failed call that took this cache ("" if
 *  none failed yet). Owned by the cache; valid until the next call on it.
 *  Returns "invalid kvc_rt_cache handle" for NULL or a dead handle. */
KVC_RT_API const char *kvc_rt_cache_last_error(const kvc_rt_cache *cache);

/** Copies the cache's configuration into *out (out->encodings points to the
 *  cache's own copy, valid while the cache lives; encodings_per_layer is 1
 *  or kv_heads, never 0).
 *  Errors: NULL_POINTER, INVALID_HANDLE. */
KVC_RT_API kvc_rt_status kvc_rt_cache_get_config(const kvc_rt_cache *cache,
                                                 kvc_rt_cache_config *out);

/** Checks that every KV head of `layer` has exactly `encoding`, and the
 *  layer `kv_heads`, `head_dim` and `page_tokens`: what compiled code calls
 *  once before reading pages laid out for a given encoding. The same as
 *  kvc_rt_cache_check_layer_heads with count 1.
 *  Errors: NULL_POINTER, INVALID_HANDLE, INVALID_ARGUMENT (layer out of
 *  range, a malformed encoding), SHAPE_MISMATCH (heads, head_dim),
 *  ENCODING_MISMATCH (an encoding, page_tokens). */
KVC_RT_API kvc_rt_status kvc_rt_cache_check_layer(
    const kvc_rt_cache *cache, uint32_t layer, const kvc_rt_encoding *encoding,
    uint32_t kv_heads, uint32_t head_dim, uint32_t page_tokens);

/** Checks the encodings of `layer` head by head: with count 1 every head
 *  must have encodings[0], with count == kv_heads head h must have
 *  encodings[h]; kv_heads, head_dim and page_tokens as in
 *  kvc_rt_cache_check_layer. The ENCODING_MISMATCH message names the layer,
 *  the first mismatching head and both encodings.
 *  Errors: NULL_POINTER, INVALID_HANDLE, INVALID_ARGUMENT (layer, count not
 *  1 or kv_heads, a malformed encoding), SHAPE_MISMATCH (heads, head_dim),
 *  ENCODING_MISMATCH (an encoding, page_tokens). */
KVC_RT_API kvc_rt_status kvc_rt_cache_check_layer_heads(
    const kvc_rt_cache *cache, uint32_t layer, const kvc_rt_encoding *encodings,
    uint32_t count, uint32_t kv_heads, uint32_t head_dim,
    uint32_t page_tokens);

/** The CUDA stream (a cudaStream_t) of this cache's copies; generated kernels
 *  that read the pages should use it (or synchronize). NULL on the CPU
 *  backends. Errors: NULL_POINTER, INVALID_HANDLE. */
KVC_RT_API kvc_rt_status kvc_rt_cache_stream(const kvc_rt_cache *cache,
                                             void **stream);

/** Waits for the cache's stream: its copies and the kernels launched there
 *  (wait-on-return=false functions return with them enqueued). No-op on the
 *  CPU backends. Errors: NULL_POINTER, INVALID_HANDLE, BACKEND. */
KVC_RT_API kvc_rt_status kvc_rt_cache_synchronize(kvc_rt_cache *cache);

/*===----------------------------- Sequences -----------------------------===*/

typedef uint64_t kvc_rt_seq;

/** Creates an empty sequence (0 tokens in every layer).
 *  Errors: NULL_POINTER, INVALID_HANDLE, CAPACITY_EXCEEDED (max_sequences
 *  live sequences already). */
KVC_RT_API kvc_rt_status kvc_rt_sequence_create(kvc_rt_cache *cache,
                                                kvc_rt_seq *out);

/** Forks `parent`: the new sequence *out has the same tokens in every layer,
 *  shares all of the parent's pages (their reference counts go up; no page
 *  is copied now) and gets a copy of the parent's residual rows. Either
 *  sequence's next append that writes into a shared, partially filled page
 *  copies that page first. Cost: O(layers * (pages + residual rows)).
 *  Errors: NULL_POINTER, INVALID_HANDLE, INVALID_SEQUENCE,
 *  CAPACITY_EXCEEDED (no free sequence slot), BACKEND. */
KVC_RT_API kvc_rt_status kvc_rt_sequence_fork(kvc_rt_cache *cache,
                                              kvc_rt_seq parent,
                                              kvc_rt_seq *out);

/** Frees a sequence: drops its reference on every page (pages no other
 *  sequence uses go back to the free lists) and its residual slot. The id
 *  becomes invalid forever. Errors: NULL_POINTER (cache), INVALID_HANDLE,
 *  INVALID_SEQUENCE (e.g. double free). */
KVC_RT_API kvc_rt_status kvc_rt_sequence_free(kvc_rt_cache *cache,
                                              kvc_rt_seq seq);

/** Number of tokens of `seq` in `layer` (layers are appended to one at a
 *  time, so they may differ transiently).
 *  Errors: NULL_POINTER, INVALID_HANDLE, INVALID_SEQUENCE, INVALID_ARGUMENT
 *  (layer). */
KVC_RT_API kvc_rt_status kvc_rt_sequence_length(const kvc_rt_cache *cache,
                                                kvc_rt_seq seq, uint32_t layer,
                                                uint64_t *num_tokens);

/** Element type of appended tokens. */
typedef enum kvc_rt_dtype {
  KVC_RT_DTYPE_F32 = 0, /**< float */
  KVC_RT_DTYPE_F16 = 1  /**< IEEE binary16 bits (uint16_t) */
} kvc_rt_dtype;

/** Tokens to append to one layer of one sequence, in host memory. Element
 *  (head h, token t, channel c) of keys is at
 *  `keys[h * head_stride + t * token_stride + c]` (elements, not bytes);
 *  same for values. The default strides (0) mean [kv_heads][num_tokens]
 *  [head_dim] contiguous; [num_tokens][kv_heads][head_dim] (BSHD) is
 *  head_stride = head_dim, token_stride = kv_heads * head_dim. */
typedef struct kvc_rt_tokens {
  const void *keys;
  const void *values;
  uint32_t num_tokens; /**< may be 0 (a no-op) */
  uint32_t dtype;      /**< kvc_rt_dtype */
  uint32_t kv_heads;   /**< must equal the cache's (shape check) */
  uint32_t head_dim;   /**< must equal the cache's (shape check) */
  uint64_t head_stride;  /**< 0: num_tokens * head_dim */
  uint64_t token_stride; /**< 0: head_dim */
} kvc_rt_tokens;

/** Appends tokens to `layer` of `seq`. Values are rounded to fp16 (round to
 *  nearest even, overflow to +-Inf, as the staging buffer stores them);
 *  whenever the count reaches a multiple of R, the R tokens since the last
 *  flush are compressed into pages, each head with its K and V encodings.
 *  All checks and page reservations (new pages, and a copy-on-write copy of
 *  a shared partial page) happen before anything is written.
 *  Errors: NULL_POINTER (cache, tokens, keys/values when num_tokens > 0),
 *  INVALID_HANDLE, INVALID_SEQUENCE, INVALID_ARGUMENT (layer, dtype),
 *  SHAPE_MISMATCH (kv_heads, head_dim), CAPACITY_EXCEEDED (past
 *  max_tokens), OUT_OF_MEMORY (the layer's pools lack free pages), BACKEND.
 */
KVC_RT_API kvc_rt_status kvc_rt_append(kvc_rt_cache *cache, kvc_rt_seq seq,
                                       uint32_t layer,
                                       const kvc_rt_tokens *tokens);

/** Where the tokens of a reserved append go (kvc_rt_reserve_append): the
 *  sequence had n0 = old_tokens tokens and now has n1 = new_tokens; tokens
 *  [old_compressed, new_compressed) = [c(n0), c(n1)) are to be compressed
 *  into pages. */
typedef struct kvc_rt_append_range {
  uint64_t old_tokens;
  uint64_t new_tokens;
  uint64_t old_compressed;
  uint64_t new_compressed;
} kvc_rt_append_range;

/** For code that writes appended tokens itself (kvc's generated append
 *  kernels and loops): reserves `num_tokens` new tokens in `layer` of each
 *  of the `count` sequences `seqs`, all or none. Every sequence is checked
 *  (distinct, live, within max_tokens) and the pages of all of them counted
 *  against the layer's free pages before any is taken; then each takes its
 *  pages as kvc_rt_append would (new pages zeroed, a copy-on-write copy of
 *  a shared partial page, the page-table mirror updated) and its count
 *  becomes n1; out[i] says where sequence i's tokens go. Nothing is
 *  written: before anything else reads or changes these sequences, the
 *  caller must (1) compress tokens [c(n0), c(n1)) into their pages as
 *  kvc_rt_append does (token t < n0 from row t - c(n0) of the fp16
 *  residual staging, the others from the new tokens rounded to fp16;
 *  pages that are KVC_RT_PAGE_HOLE are skipped), then (2) write tokens
 *  [max(c(n1), n0), n1) rounded to fp16 to rows t - c(n1) of the staging.
 *  On CUDA the page preparation (zeroing, the copy) is enqueued on the
 *  cache's stream: kernels on other streams may write the pages once it is
 *  synchronized (kvc_rt_mlir_reserve_append does).
 *  Errors: NULL_POINTER (cache, seqs or out with count > 0),
 *  INVALID_HANDLE, INVALID_SEQUENCE, INVALID_ARGUMENT (layer, a sequence
 *  twice, count > max_sequences), CAPACITY_EXCEEDED, OUT_OF_MEMORY, BACKEND
 *  (nothing is reserved after any error). A sequence and its fork in one
 *  batch, both flushing into the page they share, need what two
 *  kvc_rt_append calls would: one copy, the last owner writes in place. */
KVC_RT_API kvc_rt_status kvc_rt_reserve_append(
    kvc_rt_cache *cache, uint32_t layer, const kvc_rt_seq *seqs, uint32_t count,
    uint32_t num_tokens, kvc_rt_append_range *out);

/*===-------------------- Read access for compiled code ------------------===*/

/** One side's block geometry of one head, and the layer's page size. */
typedef struct kvc_rt_block_layout {
  uint64_t block_bytes;   /**< one head's block (layout.md 4), multiple of 16 */
  uint64_t codes_bytes;   /**< codes region at offset 0 of a block */
  uint64_t params_offset; /**< params region (16-byte aligned) */
  uint64_t params_bytes;  /**< 0 for fp16 */
  uint64_t page_bytes;    /**< page stride in the pool: the sum of all heads'
                               block_bytes (kv_heads * block_bytes when the
                               heads' encodings are the same) */
} kvc_rt_block_layout;

/** One layer's geometry and base pointers; all of it stays valid and
 *  unchanged while the cache lives (the page-table *entries* change with
 *  appends, forks and frees). Pointers are backend memory (device pointers
 *  on CUDA), except `page_tables`, which is host memory. */
typedef struct kvc_rt_layer_view {
  /** The layer's encoding; head 0's when uniform_heads is 0 (then `k` and
   *  `v` describe head 0's blocks too, but page_bytes is the true page
   *  size: use kvc_rt_head_view_get for the other heads). */
  kvc_rt_encoding encoding;
  uint32_t kv_heads;
  uint32_t head_dim;
  uint32_t page_tokens;
  uint32_t residual;          /**< R of this layer */
  uint32_t num_pages;         /**< pages in each pool */
  uint32_t max_sequences;     /**< rows of the page-table matrix */
  uint32_t max_pages_per_sequence; /**< its columns: ceil(max_tokens / T) */
  uint32_t uniform_heads;     /**< 1 when every KV head has the same
                                   encoding (head h's block at
                                   h * block_bytes), 0 otherwise */
  kvc_rt_block_layout k;
  kvc_rt_block_layout v;
  void *k_pool;               /**< num_pages * k.page_bytes bytes */
  void *v_pool;               /**< num_pages * v.page_bytes bytes */
  /** Residual staging of every sequence slot: the fp16 [R][D] buffer of
   *  (slot s, head h) is at `k_residual + (s * kv_heads + h) *
   *  residual_head_bytes`; NULL when R == 0. */
  void *k_residual;
  void *v_residual;
  uint64_t residual_head_bytes; /**< R * D * 2 rounded up to 16 */
  /** Page indices of every sequence slot, row-major
   *  [max_sequences][max_pages_per_sequence] int32; row s holds the pages of
   *  the sequence in slot s (entries past its page count are -1). */
  const int32_t *page_tables;
  /** The same matrix in backend memory (== page_tables on the CPU backend),
   *  kept in sync by every call, for kernels. */
  const int32_t *page_tables_device;
} kvc_rt_layer_view;

/** One (layer, sequence): what a loop over pages needs. Valid until the next
 *  call that modifies this sequence (append, evict, free) or destroys the
 *  cache;
 *  the pool pointers and `slot` stay valid as long as the sequence lives.
 *  Compressed token t (< compressed_tokens) of head h is in the block at
 *  `pool + page_table[t / T] * page_bytes + (head h's block offset)`,
 *  token slot t % T, where the block offset is kvc_rt_head_view's
 *  k_block_offset / v_block_offset (h * block_bytes when the layer's heads
 *  share one encoding); residual token compressed_tokens + i of head h is
 *  row i of the fp16 [R][D] buffer at `residual + h * residual_head_bytes`.
 *  `k` and `v` describe head 0's blocks (page_bytes: the whole page). */
typedef struct kvc_rt_sequence_view {
  uint64_t num_tokens;        /**< n */
  uint64_t compressed_tokens; /**< c(n) = floor(n / R) * R (n if R == 0) */
  uint64_t residual_tokens;   /**< n - c(n) */
  uint32_t num_pages;         /**< ceil(c(n) / T) */
  uint32_t slot;              /**< row of this sequence in page_tables */
  /** Host memory, num_pages entries; KVC_RT_PAGE_HOLE for a page released
   *  by eviction (skip it: none of its tokens is live). */
  const int32_t *page_table;
  const int32_t *page_table_device; /**< backend memory, same entries */
  const void *k_pool;
  const void *v_pool;
  const void *k_residual;     /**< kv_heads buffers; NULL when R == 0 */
  const void *v_residual;
  uint64_t residual_head_bytes;
  kvc_rt_block_layout k;
  kvc_rt_block_layout v;
  uint32_t kv_heads;
  uint32_t head_dim;
  uint32_t page_tokens;
  uint32_t residual;
  /** The live bitmaps of this (sequence, layer), host memory: head h's at
   *  `live_bitmap + h * live_bitmap_head_bytes`, token t live iff bit t % 8
   *  of byte t / 8 is 1. NULL while no token of the sequence was ever
   *  evicted in this layer (every token is live). */
  const uint8_t *live_bitmap;
  uint64_t live_bitmap_head_bytes; /**< ceil(max_tokens / 8) rounded up to
                                        a multiple of 8 */
  uint64_t evicted_tokens;         /**< over all heads */
  /** Two-tier eviction (kvc_rt_evict_demote): the host page-pointer table
   *  of the demoted tokens, max_pages_per_sequence entries (page p covers
   *  positions [pT, (p+1)T); NULL while none of them is demoted), or NULL
   *  when the sequence drops its evicted tokens in this layer. A demoted
   *  page holds the K blocks of KV heads 0..H-1 at `demote.key`, then the V
   *  blocks at `demote.value` (docs/layout.md 5.2). */
  const uint8_t *const *demoted_pages;
  kvc_rt_encoding demote; /**< zero when demoted_pages is NULL */
} kvc_rt_sequence_view;

/** Fills *out for `layer`. Errors: NULL_POINTER, INVALID_HANDLE,
 *  INVALID_ARGUMENT (layer). */
KVC_RT_API kvc_rt_status kvc_rt_layer_view_get(const kvc_rt_cache *cache,
                                               uint32_t layer,
                                               kvc_rt_layer_view *out);

/** One KV head of a layer: its encoding and where its blocks sit in a
 *  page. Constant while the cache lives. */
typedef struct kvc_rt_head_view {
  kvc_rt_encoding encoding;    /**< this head's */
  kvc_rt_block_layout k, v;    /**< this head's blocks; page_bytes = the
                                    layer's page size */
  uint64_t k_block_offset;     /**< byte offset of this head's K block within
                                    a K page (sum of the K block sizes of
                                    heads 0 .. head-1) */
  uint64_t v_block_offset;     /**< same within a V page */
} kvc_rt_head_view;

/** Fills *out for (`layer`, `head`). Errors: NULL_POINTER, INVALID_HANDLE,
 *  INVALID_ARGUMENT (layer, head). */
KVC_RT_API kvc_rt_status kvc_rt_head_view_get(const kvc_rt_cache *cache,
                                              uint32_t layer, uint32_t head,
                                              kvc_rt_head_view *out);

/** Fills *out for (`layer`, `seq`). Errors: NULL_POINTER, INVALID_HANDLE,
 *  INVALID_SEQUENCE, INVALID_ARGUMENT (layer). */
KVC_RT_API kvc_rt_status kvc_rt_sequence_view_get(const kvc_rt_cache *cache,
                                                  kvc_rt_seq seq,
                                                  uint32_t layer,
                                                  kvc_rt_sequence_view *out);

/** Dequantizes all tokens of (`layer`, `seq`, `head`) into host fp32
 *  buffers [n][head_dim] (n = the sequence's length in that layer):
 *  compressed tokens through the numerics library, residual tokens from
 *  fp16. Rows of tokens evicted in this head are quiet NaN (their pages may
 *  be holes, which are never read). For tests and oracles (it synchronizes
 *  on CUDA). Either output may
 *  be NULL to skip that side. `capacity_tokens` is the rows each non-NULL
 *  output holds. Errors: NULL_POINTER (cache), INVALID_HANDLE,
 *  INVALID_SEQUENCE, INVALID_ARGUMENT (layer, head), CAPACITY_EXCEEDED
 *  (capacity_tokens < n), BACKEND. */
KVC_RT_API kvc_rt_status kvc_rt_gather(const kvc_rt_cache *cache,
                                       kvc_rt_seq seq, uint32_t layer,
                                       uint32_t head, float *keys_out,
                                       float *values_out,
                                       uint64_t capacity_tokens);

/** Which pool of a layer. */
typedef enum kvc_rt_pool { KVC_RT_POOL_K = 0, KVC_RT_POOL_V = 1 } kvc_rt_pool;

/** Copies the raw bytes of one head's block of `page` (a pool index, as
 *  found in a page table) of `pool` (kvc_rt_pool) into host memory `dst` of
 *  `dst_bytes` >= that head's block_bytes on that side. For tests and dumps.
 *  Only pages in use can be read: a free page (never used, or released by
 *  eviction or free) and a hole (KVC_RT_PAGE_HOLE, out of range as a
 *  uint32_t) are INVALID_ARGUMENT. Errors: NULL_POINTER, INVALID_HANDLE,
 *  INVALID_ARGUMENT (layer, page, head, pool), CAPACITY_EXCEEDED
 *  (dst_bytes), BACKEND. */
KVC_RT_API kvc_rt_status kvc_rt_read_block(const kvc_rt_cache *cache,
                                           uint32_t layer, uint32_t page,
                                           uint32_t head, uint32_t pool,
                                           void *dst, uint64_t dst_bytes);

/*===------------------------------ Eviction -----------------------------===*/

/** Eviction policies (kvc::numerics::EvictKind). */
typedef enum kvc_rt_evict_kind {
  KVC_RT_EVICT_STREAMING = 0, /**< sink + recent window (StreamingLLM) */
  KVC_RT_EVICT_H2O = 1,       /**< heavy hitters by accumulated attention */
  KVC_RT_EVICT_SNAPKV = 2     /**< observation-window scores at prefill */
} kvc_rt_evict_kind;

/** `#kvc.evict`: keep at most `budget` tokens per KV head: the first `sink`,
 *  the last `window`, and (H2O, SnapKV) the highest-scoring others.
 *  Constraints (kvc::numerics::checkEvictPolicy): budget >= 1, window >= 1,
 *  sink + window <= budget, and for streaming budget == sink + window. */
typedef struct kvc_rt_evict_policy {
  uint32_t kind; /**< kvc_rt_evict_kind */
  uint32_t sink;
  uint32_t window;
  uint32_t budget;
} kvc_rt_evict_policy;

/** Applies `policy` to every KV head of (`seq`, `layer`): for head h,
 *  kvc::numerics::selectKeptTokens(policy, scores + h * num_tokens,
 *  num_tokens, live_h), where live_h is the head's live set (tokens already
 *  evicted stay evicted; with at most `budget` live tokens nothing changes).
 *  `scores` is host [kv_heads][num_tokens] f32 (H2O: accumulated attention
 *  mass; SnapKV: observation-window mass); it is ignored, and may be NULL,
 *  for streaming. `num_tokens` must equal the sequence's length.
 *
 *  No data moves: evicted tokens keep their bytes (tokens still in the fp16
 *  staging window stay staged, they are just dead) and positions never
 *  shift. A page none of whose T token positions is live in any head (all
 *  of them below n) is released: its page-table entry becomes
 *  KVC_RT_PAGE_HOLE and the page goes back to the pool (a page shared with
 *  a fork just drops this sequence's reference). Holes are never refilled;
 *  appends continue at position n, new tokens are live, and a flush skips
 *  the holes (and does not allocate a page for a position range evicted
 *  while staged). The first eviction that drops a token of the sequence in
 *  this layer allocates its bitmaps (kv_heads * live_bitmap_head_bytes
 *  bytes of host memory; freed with the sequence, copied by fork).
 *  Cost: O(kv_heads * n log n) (the score sort) + O(pages).
 *  Errors (nothing changed, nothing leaked): NULL_POINTER (cache, policy),
 *  INVALID_HANDLE, INVALID_SEQUENCE, INVALID_ARGUMENT (layer; a bad policy,
 *  with checkEvictPolicy's message; an unknown kind; num_tokens != the
 *  length; NULL scores for H2O / SnapKV with num_tokens > 0; a NaN score), OUT_OF_MEMORY (the
 *  bitmaps or the selection's scratch), BACKEND (updating the CUDA page
 *  table mirror). */
KVC_RT_API kvc_rt_status kvc_rt_evict(kvc_rt_cache *cache, kvc_rt_seq seq,
                                      uint32_t layer,
                                      const kvc_rt_evict_policy *policy,
                                      const float *scores,
                                      uint64_t num_tokens);

/** kvc_rt_evict with one budget per KV head: head h keeps at most
 *  `head_budgets[h]` tokens (kv_heads entries) under `policy`'s kind, sink
 *  and window; `policy->budget` must be the largest head budget
 *  (kvc::numerics::checkEvictPolicy with headBudgets: each head's budget
 *  obeys the single-head rules, and streaming takes no per-head budgets).
 *  `head_budgets` NULL is kvc_rt_evict. Everything else, errors included,
 *  as kvc_rt_evict. */
KVC_RT_API kvc_rt_status kvc_rt_evict_heads(kvc_rt_cache *cache,
                                            kvc_rt_seq seq, uint32_t layer,
                                            const kvc_rt_evict_policy *policy,
                                            const uint32_t *head_budgets,
                                            const float *scores,
                                            uint64_t num_tokens);

/** Two-tier eviction: kvc_rt_evict_heads, except that the tokens the policy
 *  evicts are kept at the cheaper encodings `demote->key` / `demote->value`
 *  (`residual` ignored) instead of being dropped. A newly evicted token's
 *  row, as a reader saw it just before (dequantized from its page, or the
 *  fp16 staged row), is encoded alone into a host page of demoted tokens
 *  (kvc_rt_sequence_view.demoted_pages); kvc_rt_gather returns the demoted
 *  rows of evicted tokens instead of NaN. Pages whose tokens are all evicted
 *  are released as holes as before, so memory goes from the page encoding
 *  to the cheaper one.
 *
 *  The demotion encodings must hold one token on their own: fp16, fp8 or
 *  token-axis quantization (valid for head_dim and page_tokens). The first
 *  demoting eviction of a (sequence, layer) fixes them; later ones must pass
 *  the same, and that (sequence, layer) may no longer drop tokens
 *  (kvc_rt_evict); a (sequence, layer) that already dropped tokens cannot
 *  start demoting. Fork copies the demoted pages; free releases them.
 *  Errors (nothing changed, nothing leaked): kvc_rt_evict_heads's;
 *  NULL_POINTER (demote); INVALID_ARGUMENT (a demotion encoding that cannot
 *  hold a token alone, or the rules above); UNSUPPORTED on backends other
 *  than KVC_RT_BACKEND_CPU (the demoted pages are host memory);
 *  OUT_OF_MEMORY (a demoted page). */
KVC_RT_API kvc_rt_status kvc_rt_evict_demote(
    kvc_rt_cache *cache, kvc_rt_seq seq, uint32_t layer,
    const kvc_rt_evict_policy *policy, const uint32_t *head_budgets,
    const kvc_rt_encoding *demote, const float *scores, uint64_t num_tokens);

/** Writes out[t] = 1 if token t of (`seq`, `layer`, `kv_head`) is live, 0
 *  if it was evicted, for t < n; `n` must equal the sequence's length.
 *  Errors: NULL_POINTER (cache; out when n > 0), INVALID_HANDLE,
 *  INVALID_SEQUENCE, INVALID_ARGUMENT (layer, kv_head, n != length). */
KVC_RT_API kvc_rt_status kvc_rt_live_tokens(const kvc_rt_cache *cache,
                                            kvc_rt_seq seq, uint32_t layer,
                                            uint32_t kv_head, uint8_t *out,
                                            uint64_t n);

/*===--------------------------- Statistics ------------------------------===*/

typedef struct kvc_rt_layer_stats {
  uint32_t pages_total;  /**< pool size */
  uint32_t pages_used;   /**< reference count > 0 */
  uint32_t pages_free;   /**< pages_total - pages_used */
  uint32_t pages_shared; /**< reference count > 1 (prefix sharing) */
  uint64_t k_page_bytes_used; /**< pages_used * k.page_bytes (all heads) */
  uint64_t v_page_bytes_used; /**< pages_used * v.page_bytes */
  uint64_t k_residual_bytes;  /**< staging held by live sequences, K side */
  uint64_t v_residual_bytes;
  uint64_t tokens;            /**< sum of the live sequences' lengths */
  uint64_t compressed_tokens; /**< ... of their compressed tokens */
  /** Over the live sequences and their KV heads: tokens not evicted, and
   *  evicted ones (tokens_live + tokens_evicted = tokens * kv_heads). Pages
   *  released by eviction count in pages_free. */
  uint64_t tokens_live;
  uint64_t tokens_evicted;
  /** Of tokens_evicted, those kept at a lower precision (two-tier), and
   *  the host bytes of their pages. */
  uint64_t tokens_demoted;
  uint64_t demoted_bytes;
} kvc_rt_layer_stats;

typedef struct kvc_rt_cache_stats {
  uint32_t live_sequences;
  uint32_t max_sequences;
  uint64_t pages_used;        /**< over all layers */
  uint64_t pages_free;
  uint64_t k_bytes_used;      /**< pages + staging, all layers, K side */
  uint64_t v_bytes_used;
  kvc_rt_footprint footprint; /**< what the cache reserved */
  uint64_t demoted_bytes;     /**< host pages of demoted tokens, all layers */
} kvc_rt_cache_stats;

/** Errors: NULL_POINTER, INVALID_HANDLE. O(layers). */
KVC_RT_API kvc_rt_status kvc_rt_cache_stats_get(const kvc_rt_cache *cache,
                                                kvc_rt_cache_stats *out);

/** Errors: NULL_POINTER, INVALID_HANDLE, INVALID_ARGUMENT (layer). O(1). */
KVC_RT_API kvc_rt_status kvc_rt_layer_stats_get(const kvc_rt_cache *cache,
                                                uint32_t layer,
                                                kvc_rt_layer_stats *out);

/** Checks every invariant of the bookkeeping (O(total pages + page-table
 *  entries and bitmap bits)): each page's reference count equals the
 *  number of page-table entries naming it, the free lists hold exactly the
 *  unreferenced pages once each, counts and stats agree, sequence slots are
 *  consistent, an entry is a hole exactly when every token of its page is
 *  evicted in every head, bitmap bits at and past n are 1 (new tokens are
 *  live), evicted counts match the bitmaps, and on device backends the
 *  page-table mirror equals the host tables.
 *  For tests and debugging. Errors: NULL_POINTER, INVALID_HANDLE, INTERNAL
 *  (the message names the broken invariant), BACKEND. */
KVC_RT_API kvc_rt_status kvc_rt_cache_verify(const kvc_rt_cache *cache);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KVC_RUNTIME_H */
