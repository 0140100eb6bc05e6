// RUN: kvc-opt %s -split-input-file -verify-diagnostics --kvc-lower-to-loops
// RUN: not kvc-opt %s --kvc-lower-to-loops=append=inline 2>&1 | FileCheck %s --check-prefix=APPEND
// RUN: not kvc-opt %s --kvc-cpu-pipeline=append=inline 2>&1 | FileCheck %s --check-prefix=PIPELINE
// APPEND: error: kvc-lower-to-loops: append must be `runtime` or `generated`, not `inline`
// PIPELINE: error: kvc-cpu-pipeline: append must be `runtime` or `generated`, not `inline`
// RUN: not kvc-opt %s --kvc-lower-to-loops=key-reads=columns 2>&1 | FileCheck %s --check-prefix=READS
// RUN: not kvc-opt %s --kvc-cpu-pipeline=key-reads=columns 2>&1 | FileCheck %s --check-prefix=READS-PIPELINE
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-loops=key-reads=parts 2>&1 | FileCheck %s --check-prefix=PARTS
// RUN: not kvc-opt %s --kvc-lower-to-loops=value-reads=bf16 2>&1 | FileCheck %s --check-prefix=VREADS
// RUN: not kvc-opt %s --kvc-cpu-pipeline=value-reads=bf16 2>&1 | FileCheck %s --check-prefix=VREADS-PIPELINE
// READS: error: kvc-lower-to-loops: key-reads must be `rows` or `parts`, not `columns`
// READS-PIPELINE: error: kvc-cpu-pipeline: key-reads must be `rows` or `parts`, not `columns`
// VREADS: error: kvc-lower-to-loops: value-reads must be `f32` or `f16`, not `bf16`
// VREADS-PIPELINE: error: kvc-cpu-pipeline: value-reads must be `f32` or `f16`, not `bf16`

// What the CPU path cannot lower is a compile-time error, never a silent
// slow path.

func.func @evict(%c: !kvc.cache<1x2x?x64xf16>) -> !kvc.cache<1x2x?x64xf16> {
  // expected-error @+1 {{'kvc.evict' op kvc-lower-to-loops: the cache's encoding declares no eviction (evict = #kvc.evict<...>), so attention over it would not skip evicted tokens}}
  %c1 = kvc.evict %c with <policy = streaming, sink = 4, window = 60, budget = 64> : !kvc.cache<1x2x?x64xf16>
  return %c1 : !kvc.cache<1x2x?x64xf16>
}

// -----
func.func @read_after_update(%c: !kvc.cache<1x2x?x64xf16>, %q: tensor<1x2x1x64xf32>, %k: tensor<1x2x1x64xf32>) -> tensor<1x2x1x64xf32> {
  %c1 = kvc.append %c, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  // expected-error @+1 {{'kvc.attend' op reads a cache after 'kvc.append' updated it; the CPU lowering updates caches in place}}
  %o = kvc.attend %q, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x2x1x64xf32>
  return %o : tensor<1x2x1x64xf32>
}

// -----
func.func @pruned(%c: !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, key_reduce = #kvc.prune<keep = 32>>>, %q: tensor<1x2x1x64xf32>) -> tensor<1x2x1x64xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-loops: key/value reductions are not lowered yet}}
  %o = kvc.attend %q, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, key_reduce = #kvc.prune<keep = 32>>> -> tensor<1x2x1x64xf32>
  return %o : tensor<1x2x1x64xf32>
}

// -----
// 128-token key groups do not fit 64-token pages.
func.func @page_too_small(%c: !kvc.cache<1x2x?x128xf16, #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 128>, value = #kvc.plain, residual = 128>>, %q: tensor<1x2x1x128xf32>) -> tensor<1x2x1x128xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-loops: channel-axis group (128) must divide the token count (64)}}
  %o = kvc.attend %q, %c : tensor<1x2x1x128xf32>, !kvc.cache<1x2x?x128xf16, #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 128>, value = #kvc.plain, residual = 128>> -> tensor<1x2x1x128xf32>
  return %o : tensor<1x2x1x128xf32>
}

// -----
// A per-head encoding is checked like the type's: head 1's 128-token key
// groups do not fit 64-token pages.
#widest = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>, value = #kvc.plain, residual = 128>
#head1 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 128>, value = #kvc.plain, residual = 128>
func.func @per_head_page_too_small(%c: !kvc.cache<1x2x?x64xf16, #widest> {kvc.head_encodings = [#widest, #head1]}, %q: tensor<1x2x1x64xf32>) -> tensor<1x2x1x64xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-loops: KV head 1: channel-axis group (128) must divide the token count (64)}}
  %o = kvc.attend %q, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf16, #widest> -> tensor<1x2x1x64xf32>
  return %o : tensor<1x2x1x64xf32>
}

// -----
#widest2 = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>, value = #kvc.plain, residual = 64>
#pruned = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>, value = #kvc.plain, residual = 64, key_reduce = #kvc.prune<keep = 32>>
func.func @per_head_pruned(%c: !kvc.cache<1x2x?x64xf16, #widest2> {kvc.head_encodings = [#widest2, #pruned]}, %q: tensor<1x2x1x64xf32>) -> tensor<1x2x1x64xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-loops: KV head 1: key/value reductions are not lowered yet}}
  %o = kvc.attend %q, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf16, #widest2> -> tensor<1x2x1x64xf32>
  return %o : tensor<1x2x1x64xf32>
}

// -----
#evicting = #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = streaming, sink = 4, window = 60, budget = 64>>
func.func @read_after_evict(%c: !kvc.cache<1x2x?x64xf16, #evicting>, %q: tensor<1x2x1x64xf32>) -> tensor<1x2x1x64xf32> {
  %c1 = kvc.evict %c with <policy = streaming, sink = 4, window = 60, budget = 64> : !kvc.cache<1x2x?x64xf16, #evicting>
  // expected-error @+1 {{'kvc.attend' op reads a cache after 'kvc.evict' updated it; the CPU lowering updates caches in place}}
  %o = kvc.attend %q, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf16, #evicting> -> tensor<1x2x1x64xf32>
  return %o : tensor<1x2x1x64xf32>
}

// -----
// Two-tier eviction: a demotion encoding the page layout cannot hold.
#demote_group = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>,
                              value = #kvc.quant<bits = 4, axis = token, group = 32>,
                              residual = 64,
                              evict = #kvc.evict<policy = h2o, sink = 4, window = 16, budget = 48,
                                                 demote_key = #kvc.quant<bits = 2, axis = token, group = 128>,
                                                 demote_value = #kvc.fp8<e4m3>>>
func.func @demote_group(%c: !kvc.cache<1x2x?x64xf16, #demote_group>, %q: tensor<1x8x1x64xf32>) -> tensor<1x8x1x64xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-loops: two-tier eviction demote_key: token-axis group (128) must divide the channel count (64)}}
  %o = kvc.attend %q, %c : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #demote_group> -> tensor<1x8x1x64xf32>
  return %o : tensor<1x8x1x64xf32>
}

// -----
// kvc.quantize of a dynamic shape.
func.func @quantize_dynamic(%x: tensor<?x64xf32>) -> (tensor<?x16xi8>, tensor<?x2xf16>, tensor<?x2xf16>) {
  // expected-error @+1 {{'kvc.quantize' op kvc-lower-to-loops: the input must have a static shape}}
  %c, %s, %z = kvc.quantize %x as quant<bits = 2, axis = token, group = 32> : tensor<?x64xf32> -> tensor<?x16xi8>, tensor<?x2xf16>, tensor<?x2xf16>
  return %c, %s, %z : tensor<?x16xi8>, tensor<?x2xf16>, tensor<?x2xf16>
}

// -----
// key-reads=parts reads keys in 16-channel parts (the GPU's tensor-core key
// pass's reads); head_dim 40 lowers with the default rows.
// PARTS: error: 'kvc.attend' op kvc-lower-to-loops: key-reads=parts reads keys in 16-channel parts; head_dim 40 is not a multiple of 16
func.func @parts_head_dim(%c: !kvc.cache<1x2x?x40xf16>, %q: tensor<1x4x1x40xf32>) -> tensor<1x4x1x40xf32> {
  %o = kvc.attend %q, %c : tensor<1x4x1x40xf32>, !kvc.cache<1x2x?x40xf16> -> tensor<1x4x1x40xf32>
  return %o : tensor<1x4x1x40xf32>
}
