/*===- kvc_runtime_binding.h - caches as seen by compiled code -*- C -*-===*\
 *
 * Code compiled by kvc (`kvc-cpu-pipeline`) sees a `!kvc.cache<B x H x ? x D>`
 * value as a pointer to a kvc_rt_binding: one layer of a runtime cache and
 * the B sequences of a batch. The host creates the binding and passes it
 * to the compiled function; the compiled code appends to it in place and
 * reads its pages directly.
 *
 * Errors inside compiled code cannot be returned through the model's
 * signature, so they are *sticky*: the first failure is recorded in the
 * binding, every later entry point on it does nothing (attention outputs
 * become NaN), and the host reads kvc_rt_binding_status() after the call.
 *
 * The `kvc_rt_mlir_*` functions are the entry points the compiler emits
 * calls to (names in lib/Conversion/KVCToLoops/RuntimeABI.h); memrefs are
 * passed as MLIR's C-interface descriptors. They are not meant to be called
 * by hand.
\*===----------------------------------------------------------------------===*/

#ifndef KVC_RUNTIME_BINDING_H
#define KVC_RUNTIME_BINDING_H

#include "kvc_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvc_rt_binding kvc_rt_binding;

/** Binds `layer` of `cache` and the `batch` sequences `seqs` (copied): batch
 *  entry b of compiled code is sequence seqs[b]. The cache must outlive the
 *  binding. Errors: NULL_POINTER, INVALID_HANDLE, INVALID_ARGUMENT (layer,
 *  batch == 0), INVALID_SEQUENCE, OUT_OF_MEMORY. */
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

/** Nonzero when the layer has the page size, block sizes, residual window
 *  and shape the code was compiled for (records ENCODING_MISMATCH if not). */
KVC_RT_API int32_t kvc_rt_mlir_check_layout(kvc_rt_binding *binding,
                                            int64_t page_tokens,
                                            int64_t k_block_bytes,
                                            int64_t v_block_bytes,
                                            int64_t residual, int64_t kv_heads,
                                            int64_t head_dim);

/** Tokens / compressed tokens of batch entry `b` (0 after an error). */
KVC_RT_API int64_t kvc_rt_mlir_num_tokens(kvc_rt_binding *binding, int64_t b);
KVC_RT_API int64_t kvc_rt_mlir_compressed_tokens(kvc_rt_binding *binding,
                                                 int64_t b);

/* Runtime memory is returned as raw pointers (memrefs returned by calls
 * would be freed by the compiled code's buffer deallocation). NULL after an
 * error. */

/** The layer's whole K (side 0) or V (side 1) pool. */
KVC_RT_API void *kvc_rt_mlir_pool(kvc_rt_binding *binding, int32_t side);

/** The int32 page table of batch entry `b`. */
KVC_RT_API const int32_t *kvc_rt_mlir_page_table(kvc_rt_binding *binding,
                                                 int64_t b);

/** The fp16 residual buffers of batch entry `b`, all KV heads (head h at
 *  h * residual_head_bytes). */
KVC_RT_API const void *kvc_rt_mlir_residual(kvc_rt_binding *binding, int64_t b,
                                            int32_t side);

#ifdef __cplusplus
}
#endif

#endif /* KVC_RUNTIME_BINDING_H */
