// RUN: kvc-opt %s | FileCheck %s
// Print -> parse -> print is stable, in custom and in generic form:
// RUN: kvc-opt %s | kvc-opt | FileCheck %s
// RUN: kvc-opt %s -mlir-print-op-generic | kvc-opt | FileCheck %s

// Every attribute, the type and every op of the kvc dialect round-trip.

// Encodings print once, as #kvc_encoding aliases.
// CHECK-DAG: #[[KIVI2:.*]] = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 128>
// CHECK-DAG: #[[PLAIN:.*]] = #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0>
// CHECK-DAG: #[[FP8:.*]] = #kvc.encoding<key = #kvc.fp8<e4m3>, value = #kvc.fp8<e5m2>, residual = 0>
// CHECK-DAG: #[[Q3Q8:.*]] = #kvc.encoding<key = #kvc.quant<bits = 3, axis = channel, group = 64>, value = #kvc.quant<bits = 8, axis = token, group = 128>, residual = 256>
// CHECK-DAG: #[[Q4FP8:.*]] = #kvc.encoding<key = #kvc.quant<bits = 4, axis = token, group = 64>, value = #kvc.fp8<e4m3>, residual = 32>
// CHECK-DAG: #[[PRUNE:.*]] = #kvc.encoding<key = #kvc.quant<bits = 2, axis = token, group = 32>, value = #kvc.plain, residual = 0, key_reduce = #kvc.prune<keep = 64>>
// CHECK-DAG: #[[LOWRANK:.*]] = #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, key_reduce = #kvc.lowrank<rank = 32>, value_reduce = #kvc.lowrank<rank = 64>>
// CHECK-DAG: #[[H2O:.*]] = #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 256, budget = 1024>>
// CHECK-DAG: #[[STREAM:.*]] = #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = streaming, sink = 4, window = 1020, budget = 1024>>
// CHECK-DAG: #[[SNAP:.*]] = #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = snapkv, sink = 0, window = 64, budget = 512>>
// CHECK-DAG: #[[HEADS:.*]] = #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, head_budgets = [64, 32]>>

#kivi2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 128>

// CHECK-LABEL: func.func @cache_types
// CHECK-SAME: !kvc.cache<1x8x4096x128xf16>
// CHECK-SAME: !kvc.cache<?x8x?x128xbf16>
// CHECK-SAME: !kvc.cache<2x4x?x64xf32, #[[KIVI2]]>
func.func @cache_types(%a: !kvc.cache<1x8x4096x128xf16>,
                       %b: !kvc.cache<?x8x?x128xbf16>,
                       %c: !kvc.cache<2x4x?x64xf32, #kivi2>) {
  return
}

// CHECK-LABEL: func.func @side_encodings
// CHECK-SAME: !kvc.cache<1x2x?x64xf16, #[[PLAIN]]>
// CHECK-SAME: !kvc.cache<1x2x?x64xf16, #[[FP8]]>
// CHECK-SAME: !kvc.cache<1x2x?x128xf16, #[[Q3Q8]]>
// CHECK-SAME: !kvc.cache<1x2x?x64xf16, #[[Q4FP8]]>
func.func @side_encodings(
    %a: !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0>>,
    %b: !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.fp8<e4m3>, value = #kvc.fp8<e5m2>, residual = 0>>,
    %c: !kvc.cache<1x2x?x128xf16, #kvc.encoding<key = #kvc.quant<bits = 3, axis = channel, group = 64>, value = #kvc.quant<bits = 8, axis = token, group = 128>, residual = 256>>,
    %d: !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 4, axis = token, group = 64>, value = #kvc.fp8<e4m3>, residual = 32>>) {
  return
}

// CHECK-LABEL: func.func @reductions_and_eviction
// CHECK-SAME: #[[PRUNE]]>
// CHECK-SAME: #[[LOWRANK]]>
// CHECK-SAME: #[[H2O]]>
// CHECK-SAME: #[[STREAM]]>
// CHECK-SAME: #[[SNAP]]>
func.func @reductions_and_eviction(
    %a: !kvc.cache<1x2x?x128xf16, #kvc.encoding<key = #kvc.quant<bits = 2, axis = token, group = 32>, value = #kvc.plain, residual = 0, key_reduce = #kvc.prune<keep = 64>>>,
    %b: !kvc.cache<1x2x?x128xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, key_reduce = #kvc.lowrank<rank = 32>, value_reduce = #kvc.lowrank<rank = 64>>>,
    %c: !kvc.cache<1x2x?x128xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 256, budget = 1024>>>,
    %d: !kvc.cache<1x2x?x128xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = streaming, sink = 4, window = 1020, budget = 1024>>>,
    %e: !kvc.cache<1x2x?x128xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = snapkv, sink = 0, window = 64, budget = 512>>>) {
  return
}

// A decode step: append the new token, then attend with 4 query heads per
// KV head (GQA).
// CHECK-LABEL: func.func @decode_step
// CHECK: %[[C1:.*]] = kvc.append %{{.*}}, %{{.*}}, %{{.*}} : !kvc.cache<1x8x?x128xf16, #[[KIVI2]]>, tensor<1x8x1x128xf32>, tensor<1x8x1x128xf32>
// CHECK: %[[O:.*]] = kvc.attend %{{.*}}, %[[C1]] {causal, scale = 0.0883883461 : f32} : tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf16, #[[KIVI2]]> -> tensor<1x32x1x128xf32>
// CHECK: return %[[O]], %[[C1]]
func.func @decode_step(%cache: !kvc.cache<1x8x?x128xf16, #kivi2>,
                       %q: tensor<1x32x1x128xf32>, %k: tensor<1x8x1x128xf32>,
                       %v: tensor<1x8x1x128xf32>)
    -> (tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf16, #kivi2>) {
  %c1 = kvc.append %cache, %k, %v : !kvc.cache<1x8x?x128xf16, #kivi2>, tensor<1x8x1x128xf32>, tensor<1x8x1x128xf32>
  %o = kvc.attend %q, %c1 {causal, scale = 0.0883883461 : f32} : tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf16, #kivi2> -> tensor<1x32x1x128xf32>
  return %o, %c1 : tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf16, #kivi2>
}

// Chunked prefill with a sliding window and a soft cap, on a fresh cache of
// dynamic batch, bf16 inputs.
// CHECK-LABEL: func.func @prefill_chunk
// CHECK: %[[E:.*]] = kvc.cache.empty(%{{.*}}) : !kvc.cache<?x2x4096x64xbf16>
// CHECK: kvc.append %[[E]], %{{.*}}, %{{.*}} : !kvc.cache<?x2x4096x64xbf16>, tensor<?x2x16x64xbf16>, tensor<?x2x16x64xbf16>
// CHECK: kvc.attend %{{.*}}, %{{.*}} {causal, softcap = 5.000000e+01 : f32, window = 1024 : i64} : tensor<?x14x16x64xbf16>, !kvc.cache<?x2x4096x64xbf16> -> tensor<?x14x16x64xbf16>
func.func @prefill_chunk(%batch: index, %q: tensor<?x14x16x64xbf16>,
                         %k: tensor<?x2x16x64xbf16>, %v: tensor<?x2x16x64xbf16>)
    -> tensor<?x14x16x64xbf16> {
  %e = kvc.cache.empty(%batch) : !kvc.cache<?x2x4096x64xbf16>
  %c = kvc.append %e, %k, %v : !kvc.cache<?x2x4096x64xbf16>, tensor<?x2x16x64xbf16>, tensor<?x2x16x64xbf16>
  %o = kvc.attend %q, %c {causal, window = 1024 : i64, softcap = 50.0 : f32} : tensor<?x14x16x64xbf16>, !kvc.cache<?x2x4096x64xbf16> -> tensor<?x14x16x64xbf16>
  return %o : tensor<?x14x16x64xbf16>
}

// An H2O decode step: the attention also returns each token's attention
// mass, which accumulates into the scores the eviction ranks by.
// CHECK-LABEL: func.func @h2o_step
// CHECK: %[[O:.*]], %[[M:.*]] = kvc.attend %{{.*}}, %[[C1:.*]] {causal} : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x8x1x64xf32>, tensor<1x2x?xf32>
// CHECK: kvc.evict %[[C1]] scores(%{{.*}} : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 28, budget = 64> : !kvc.cache<1x2x?x64xf16>
func.func @h2o_step(%c: !kvc.cache<1x2x?x64xf16>, %q: tensor<1x8x1x64xf32>,
                    %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x1x64xf32>,
                    %acc: tensor<1x2x?xf32>)
    -> (tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16>, tensor<1x2x?xf32>) {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o, %m = kvc.attend %q, %c1 {causal} : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x8x1x64xf32>, tensor<1x2x?xf32>
  %c2 = kvc.evict %c1 scores(%m : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 28, budget = 64> : !kvc.cache<1x2x?x64xf16>
  return %o, %c2, %m : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16>, tensor<1x2x?xf32>
}

// Two continuations of one prefix go through kvc.fork.
// An additive padding mask over the cache's tokens.
// CHECK-LABEL: func.func @masked
// CHECK: kvc.attend %{{.*}}, %{{.*}} mask(%{{.*}} : tensor<2x1x1x?xf32>) : tensor<2x8x1x64xf32>, !kvc.cache<2x2x?x64xf16> -> tensor<2x8x1x64xf32>
func.func @masked(%q: tensor<2x8x1x64xf32>, %c: !kvc.cache<2x2x?x64xf16>, %m: tensor<2x1x1x?xf32>) -> tensor<2x8x1x64xf32> {
  %o = kvc.attend %q, %c mask(%m : tensor<2x1x1x?xf32>) : tensor<2x8x1x64xf32>, !kvc.cache<2x2x?x64xf16> -> tensor<2x8x1x64xf32>
  return %o : tensor<2x8x1x64xf32>
}

// CHECK-LABEL: func.func @fork_prefix
// CHECK: %[[E:.*]] = kvc.cache.empty() : !kvc.cache<1x2x?x64xf16>
// CHECK: %[[A:.*]], %[[B:.*]] = kvc.fork %[[E]] : !kvc.cache<1x2x?x64xf16>
// CHECK: kvc.append %[[A]],
// CHECK: kvc.append %[[B]],
func.func @fork_prefix(%k: tensor<1x2x1x64xf16>, %v: tensor<1x2x1x64xf16>)
    -> (!kvc.cache<1x2x?x64xf16>, !kvc.cache<1x2x?x64xf16>) {
  %e = kvc.cache.empty() : !kvc.cache<1x2x?x64xf16>
  %a, %b = kvc.fork %e : !kvc.cache<1x2x?x64xf16>
  %a1 = kvc.append %a, %k, %v : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf16>, tensor<1x2x1x64xf16>
  %b1 = kvc.append %b, %k, %v : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf16>, tensor<1x2x1x64xf16>
  return %a1, %b1 : !kvc.cache<1x2x?x64xf16>, !kvc.cache<1x2x?x64xf16>
}

// CHECK-LABEL: func.func @evict
// CHECK: kvc.evict %{{.*}} scores(%{{.*}} : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 28, budget = 64> : !kvc.cache<1x2x?x64xf16>
// CHECK: kvc.evict %{{.*}} with <policy = streaming, sink = 4, window = 60, budget = 64> : !kvc.cache<1x2x?x64xf16>
func.func @evict(%c: !kvc.cache<1x2x?x64xf16>, %s: tensor<1x2x?xf32>)
    -> !kvc.cache<1x2x?x64xf16> {
  %c1 = kvc.evict %c scores(%s : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 28, budget = 64> : !kvc.cache<1x2x?x64xf16>
  %c2 = kvc.evict %c1 with <policy = streaming, sink = 4, window = 60, budget = 64> : !kvc.cache<1x2x?x64xf16>
  return %c2 : !kvc.cache<1x2x?x64xf16>
}

// Packed shapes per encoding (docs/layout.md).
// CHECK-LABEL: func.func @quantize_dequantize
// CHECK: kvc.quantize %{{.*}} as quant<bits = 2, axis = token, group = 32> : tensor<2x4x64xf32> -> tensor<2x4x16xi8>, tensor<2x4x2xf16>, tensor<2x4x2xf16>
// CHECK: kvc.dequantize %{{.*}}, %{{.*}}, %{{.*}} as quant<bits = 2, axis = token, group = 32> : tensor<2x4x16xi8>, tensor<2x4x2xf16>, tensor<2x4x2xf16> -> tensor<2x4x64xf32>
// CHECK: kvc.quantize %{{.*}} as quant<bits = 3, axis = channel, group = 32> : tensor<64x16xf16> -> tensor<2x16x12xi8>, tensor<2x16xf16>, tensor<2x16xf16>
// CHECK: kvc.quantize %{{.*}} as quant<bits = 4, axis = channel, group = 32> : tensor<?x64xf32> -> tensor<?x64x16xi8>, tensor<?x64xf16>, tensor<?x64xf16>
// CHECK: kvc.quantize %{{.*}} as fp8<e4m3> : tensor<8x64xbf16> -> tensor<8x64xi8>, tensor<8xf16>
// CHECK: kvc.dequantize %{{.*}}, %{{.*}} as fp8<e4m3> : tensor<8x64xi8>, tensor<8xf16> -> tensor<8x64xbf16>
func.func @quantize_dequantize(%x: tensor<2x4x64xf32>, %y: tensor<64x16xf16>,
                               %z: tensor<?x64xf32>, %w: tensor<8x64xbf16>) {
  %c, %s, %zp = kvc.quantize %x as quant<bits = 2, axis = token, group = 32> : tensor<2x4x64xf32> -> tensor<2x4x16xi8>, tensor<2x4x2xf16>, tensor<2x4x2xf16>
  %r = kvc.dequantize %c, %s, %zp as quant<bits = 2, axis = token, group = 32> : tensor<2x4x16xi8>, tensor<2x4x2xf16>, tensor<2x4x2xf16> -> tensor<2x4x64xf32>
  %c3:3 = kvc.quantize %y as quant<bits = 3, axis = channel, group = 32> : tensor<64x16xf16> -> tensor<2x16x12xi8>, tensor<2x16xf16>, tensor<2x16xf16>
  %c4:3 = kvc.quantize %z as quant<bits = 4, axis = channel, group = 32> : tensor<?x64xf32> -> tensor<?x64x16xi8>, tensor<?x64xf16>, tensor<?x64xf16>
  %f, %fs = kvc.quantize %w as fp8<e4m3> : tensor<8x64xbf16> -> tensor<8x64xi8>, tensor<8xf16>
  %fr = kvc.dequantize %f, %fs as fp8<e4m3> : tensor<8x64xi8>, tensor<8xf16> -> tensor<8x64xbf16>
  return
}

// Per-KV-head token budgets: the layer's policy with one budget per head.
// CHECK-LABEL: func.func @per_head_budgets
// CHECK-SAME: #[[HEADS]]>
// CHECK: kvc.evict %{{.*}} scores(%{{.*}} : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 28, budget = 64, head_budgets = [64, 32]>
func.func @per_head_budgets(
    %c: !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, head_budgets = [64, 32]>>>,
    %s: tensor<1x2x?xf32>)
    -> !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, head_budgets = [64, 32]>>> {
  %c1 = kvc.evict %c scores(%s : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 28, budget = 64, head_budgets = [64, 32]> : !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, head_budgets = [64, 32]>>>
  return %c1 : !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, head_budgets = [64, 32]>>>
}

// Two-tier eviction: evicted tokens kept at 2 bits per token.
// CHECK-LABEL: func.func @two_tier
// CHECK: kvc.evict %{{.*}} scores(%{{.*}} : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 28, budget = 64, demote_key = #kvc.quant<bits = 2, axis = token, group = 32>, demote_value = #kvc.fp8<e4m3>>
func.func @two_tier(
    %c: !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, demote_key = #kvc.quant<bits = 2, axis = token, group = 32>, demote_value = #kvc.fp8<e4m3>>>>,
    %s: tensor<1x2x?xf32>)
    -> !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, demote_key = #kvc.quant<bits = 2, axis = token, group = 32>, demote_value = #kvc.fp8<e4m3>>>> {
  %c1 = kvc.evict %c scores(%s : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 28, budget = 64, demote_key = #kvc.quant<bits = 2, axis = token, group = 32>, demote_value = #kvc.fp8<e4m3>> : !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, demote_key = #kvc.quant<bits = 2, axis = token, group = 32>, demote_value = #kvc.fp8<e4m3>>>>
  return %c1 : !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = h2o, sink = 4, window = 28, budget = 64, demote_key = #kvc.quant<bits = 2, axis = token, group = 32>, demote_value = #kvc.fp8<e4m3>>>>
}
