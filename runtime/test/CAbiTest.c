/*===- CAbiTest.c - The header is C99 and the shared library exports it ---===*\
 *
 * Built with -std=c99 -pedantic -Werror against libkvc_runtime.so: a cache
 * is created, a KIVI-2 layer is filled past one flush, and the views and
 * gather are read the way generated code would; then a cache with one
 * encoding per KV head; the GPU records of a binding (and, in CUDA builds,
 * the GPU error record) are read from C. Prints "N passed, N failed".
\*===----------------------------------------------------------------------===*/

#include "kvc_runtime.h"
#include "kvc_runtime_binding.h"
#include "kvc_runtime_gpu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int passed = 0, failed = 0;

static void check(int ok, const char *what);

/* Two heads: 2-bit and 4-bit channel-axis keys, fp8 and fp16 values. */
static void perHeadCache(void) {
  kvc_rt_encoding encs[2] = {
      {{KVC_RT_SIDE_QUANT, 2, KVC_RT_AXIS_CHANNEL, 32, 0},
       {KVC_RT_SIDE_FP8, 0, 0, 0, KVC_RT_FP8_E4M3},
       64},
      {{KVC_RT_SIDE_QUANT, 4, KVC_RT_AXIS_CHANNEL, 32, 0},
       {KVC_RT_SIDE_FP16, 0, 0, 0, 0},
       64}};
  kvc_rt_cache_config config;
  kvc_rt_cache *cache = NULL;
  kvc_rt_layer_view layer;
  kvc_rt_head_view head0, head1;

  check(kvc_rt_config_init(&config) == KVC_RT_OK &&
            config.encodings_per_layer == 1,
        "config_init sets encodings_per_layer");
  config.num_layers = 1;
  config.kv_heads = 2;
  config.head_dim = 64;
  config.max_sequences = 1;
  config.max_tokens = 128;
  config.pages_per_layer = 2;
  config.encodings_per_layer = 3;
  config.encodings = encs;
  check(kvc_rt_cache_create(&config, &cache) == KVC_RT_ERROR_INVALID_ARGUMENT &&
            cache == NULL,
        "encodings_per_layer must be 1 or kv_heads");
  config.encodings_per_layer = 2;
  check(kvc_rt_cache_create(&config, &cache) == KVC_RT_OK, "per-head create");
  check(kvc_rt_layer_view_get(cache, 0, &layer) == KVC_RT_OK &&
            layer.uniform_heads == 0,
        "heads differ");
  check(kvc_rt_head_view_get(cache, 0, 0, &head0) == KVC_RT_OK &&
            kvc_rt_head_view_get(cache, 0, 1, &head1) == KVC_RT_OK,
        "head views");
  check(head1.k_block_offset == head0.k.block_bytes &&
            layer.k.page_bytes == head0.k.block_bytes + head1.k.block_bytes &&
            head1.k.block_bytes > head0.k.block_bytes,
        "blocks back to back");
  check(kvc_rt_cache_check_layer_heads(cache, 0, encs, 2, 2, 64, 64) ==
            KVC_RT_OK,
        "check_layer_heads");
  check(kvc_rt_cache_check_layer(cache, 0, &encs[0], 2, 64, 64) ==
            KVC_RT_ERROR_ENCODING_MISMATCH,
        "check_layer sees head 1");
  check(kvc_rt_pack_side_encoding(&head1.encoding.key) ==
            ((int64_t)1 | (int64_t)4 << 8 | (int64_t)32 << 32),
        "side descriptor");
  check(kvc_rt_cache_destroy(cache) == KVC_RT_OK, "destroy per-head");
}

static void check(int ok, const char *what) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    printf("FAILED: %s (last error: %s)\n", what, kvc_rt_last_error());
  }
}

int main(void) {
  enum { H = 2, D = 64, N = 150 };
  kvc_rt_encoding enc = {{KVC_RT_SIDE_QUANT, 2, KVC_RT_AXIS_CHANNEL, 32, 0},
                         {KVC_RT_SIDE_QUANT, 2, KVC_RT_AXIS_TOKEN, 32, 0},
                         64};
  kvc_rt_cache_config config;
  kvc_rt_cache *cache = NULL;
  kvc_rt_seq seq = KVC_RT_SEQ_INVALID;
  kvc_rt_tokens tokens = {0};
  kvc_rt_sequence_view view;
  kvc_rt_layer_stats stats;
  float *keys = malloc(sizeof(float) * H * N * D);
  float *out = malloc(sizeof(float) * N * D);
  double maxError = 0.0;
  int i;

  for (i = 0; i < H * N * D; ++i)
    keys[i] = (float)sin(0.01 * i) * 3.0f;

  check(kvc_rt_abi_version() == KVC_RT_ABI_VERSION, "abi version");
  check(kvc_rt_config_init(&config) == KVC_RT_OK, "config_init");
  config.num_layers = 1;
  config.kv_heads = H;
  config.head_dim = D;
  config.max_sequences = 2;
  config.max_tokens = 256;
  config.pages_per_layer = 8;
  config.encodings = &enc;
  check(kvc_rt_cache_create(&config, &cache) == KVC_RT_OK, "cache_create");
  check(kvc_rt_sequence_create(cache, &seq) == KVC_RT_OK, "sequence_create");

  tokens.keys = keys;
  tokens.values = keys;
  tokens.num_tokens = N;
  tokens.dtype = KVC_RT_DTYPE_F32;
  tokens.kv_heads = H;
  tokens.head_dim = D;
  check(kvc_rt_append(cache, seq, 0, &tokens) == KVC_RT_OK, "append");
  check(kvc_rt_sequence_view_get(cache, seq, 0, &view) == KVC_RT_OK, "view");
  check(view.compressed_tokens == 128 && view.residual_tokens == 22 &&
            view.num_pages == 2 && view.page_table[0] >= 0,
        "view contents");
  check(kvc_rt_gather(cache, seq, 0, 1, out, NULL, N) == KVC_RT_OK, "gather");
  for (i = 0; i < N * D; ++i) {
    double e = fabs((double)out[i] - (double)keys[N * D + i]);
    if (e > maxError)
      maxError = e;
  }
  /* 2-bit groups of values in [-3, 3]: error at most half a step (1.0). */
  check(maxError <= 1.01, "2-bit error bound");
  check(kvc_rt_layer_stats_get(cache, 0, &stats) == KVC_RT_OK &&
            stats.pages_used == 2,
        "stats");
  {
    kvc_rt_binding *binding = NULL;
    const kvc_rt_gpu_sequence *records = NULL;
    check(sizeof(kvc_rt_gpu_sequence) == 32, "gpu record size");
    check(kvc_rt_binding_create(cache, 0, &seq, 1, &binding) == KVC_RT_OK,
          "binding_create");
    records = kvc_rt_mlir_gpu_sequences(binding);
    check(records != NULL && records[0].num_tokens == N &&
              records[0].compressed_tokens == 128 &&
              records[0].page_table ==
                  (uint64_t)(uintptr_t)view.page_table_device &&
              records[0].k_residual == (uint64_t)(uintptr_t)view.k_residual,
          "gpu records");
    check(kvc_rt_mlir_gpu_workspace(binding, 1000) != NULL, "gpu workspace");
    /* The CPU backend has no stream: kernels would use the default one. */
    check(kvc_rt_mlir_gpu_stream(binding, NULL) == NULL, "gpu stream");
    kvc_rt_mlir_gpu_synchronize(binding);
    check(kvc_rt_binding_status(binding) == KVC_RT_OK, "gpu synchronize");
    check(kvc_rt_mlir_live_bitmap(binding, 0, 1) == NULL,
          "no bitmap before eviction");
    kvc_rt_binding_destroy(binding);
  }
  {
    /* Streaming keeps tokens 0..3 and 86..149: page 1 (64..127) keeps
     * 86..127, so no page is released; 82 tokens per head are evicted. */
    kvc_rt_evict_policy policy = {KVC_RT_EVICT_STREAMING, 4, 64, 68};
    uint8_t live[N];
    kvc_rt_binding *binding = NULL;
    const uint8_t *bits = NULL;
    check(kvc_rt_evict(cache, seq, 0, &policy, NULL, N) == KVC_RT_OK,
          "evict");
    check(kvc_rt_live_tokens(cache, seq, 0, 1, live, N) == KVC_RT_OK &&
              live[3] == 1 && live[4] == 0 && live[85] == 0 && live[86] == 1,
          "live_tokens");
    check(kvc_rt_layer_stats_get(cache, 0, &stats) == KVC_RT_OK &&
              stats.tokens_live == 2 * 68 && stats.tokens_evicted == 2 * 82 &&
              stats.pages_used == 2,
          "eviction stats");
    policy.budget = 5; /* streaming needs budget == sink + window */
    check(kvc_rt_evict(cache, seq, 0, &policy, NULL, N) ==
              KVC_RT_ERROR_INVALID_ARGUMENT,
          "bad policy");
    check(kvc_rt_binding_create(cache, 0, &seq, 1, &binding) == KVC_RT_OK,
          "binding_create after evict");
    bits = kvc_rt_mlir_live_bitmap(binding, 0, 0);
    check(bits != NULL && (bits[0] & 0x1F) == 0x0F, "live bitmap");
    _mlir_ciface_kvc_rt_mlir_evict(binding, NULL, KVC_RT_EVICT_STREAMING, 0,
                                   8, 8);
    check(kvc_rt_binding_status(binding) == KVC_RT_OK, "mlir evict");
    check(kvc_rt_mlir_gpu_live_bitmaps(binding) != NULL, "gpu bitmaps");
    kvc_rt_binding_destroy(binding);
    /* Only 142..149 are live: both pages are released, holes remain. */
    check(kvc_rt_sequence_view_get(cache, seq, 0, &view) == KVC_RT_OK &&
              view.num_pages == 2 && view.page_table[0] == KVC_RT_PAGE_HOLE &&
              view.page_table[1] == KVC_RT_PAGE_HOLE,
          "holes");
    check(kvc_rt_layer_stats_get(cache, 0, &stats) == KVC_RT_OK &&
              stats.pages_used == 0 && stats.tokens_live == 2 * 8,
          "pages released");
  }
#ifdef KVC_RT_TEST_HAVE_CUDA
  {
    const char *message = NULL;
    kvc_rt_gpu_clear_error();
    check(kvc_rt_gpu_last_error(&message) == 0 && message && !message[0],
          "gpu error record");
  }
#endif
  check(kvc_rt_sequence_free(cache, seq) == KVC_RT_OK, "free");
  check(kvc_rt_sequence_free(cache, seq) == KVC_RT_ERROR_INVALID_SEQUENCE,
        "double free is an error");
  check(kvc_rt_last_error()[0] != '\0', "error message");
  check(kvc_rt_cache_destroy(cache) == KVC_RT_OK, "destroy");
  check(kvc_rt_cache_destroy(cache) == KVC_RT_ERROR_INVALID_HANDLE,
        "destroyed handle");

  perHeadCache();
  free(keys);
  free(out);
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
