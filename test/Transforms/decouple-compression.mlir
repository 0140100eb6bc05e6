// RUN: kvc-opt %s -split-input-file --kvc-decouple-compression | FileCheck %s --check-prefix=DEFAULT
// RUN: kvc-opt %s -split-input-file --kvc-decouple-compression="spec=key=q4:channel:g64,value=fp8:e4m3,residual=64 layers=1:value=q2:token:g32;0-0:key=fp16 storage-type=bf16" | FileCheck %s --check-prefix=SPEC

// The default is the decoupled KIVI-2 policy on an f16 storage type; caches
// are retyped through append/fork to the function results.

// DEFAULT-DAG: #[[KIVI:.*]] = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 128>
// DEFAULT-LABEL: func.func @two_layers
// DEFAULT-SAME: (%{{.*}}: !kvc.cache<1x8x?x128xf16, #[[KIVI]]> {kvc.layer = 0 : i64}, %{{.*}}: !kvc.cache<1x8x?x128xf16, #[[KIVI]]> {kvc.layer = 1 : i64}
// DEFAULT-SAME: -> (tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf16, #[[KIVI]]>, !kvc.cache<1x8x?x128xf16, #[[KIVI]]>)
// DEFAULT: kvc.append {{.*}} : !kvc.cache<1x8x?x128xf16, #[[KIVI]]>
// DEFAULT: kvc.attend {{.*}} !kvc.cache<1x8x?x128xf16, #[[KIVI]]> -> tensor<1x32x1x128xf32>

// Layer 0 keeps fp16 keys, layer 1 gets 2-bit per-token values, both take
// the base spec for the rest; storage becomes bf16.
// SPEC-DAG: #[[L0:.*]] = #kvc.encoding<key = #kvc.plain, value = #kvc.fp8<e4m3>, residual = 64>
// SPEC-DAG: #[[L1:.*]] = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 64>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 64>
// SPEC-LABEL: func.func @two_layers
// SPEC-SAME: !kvc.cache<1x8x?x128xbf16, #[[L0]]> {kvc.layer = 0 : i64}
// SPEC-SAME: !kvc.cache<1x8x?x128xbf16, #[[L1]]> {kvc.layer = 1 : i64}
func.func @two_layers(%c0: !kvc.cache<1x8x?x128xf32> {kvc.layer = 0 : i64},
                      %c1: !kvc.cache<1x8x?x128xf32> {kvc.layer = 1 : i64},
                      %q: tensor<1x32x1x128xf32>, %k: tensor<1x8x1x128xf32>)
    -> (tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf32>, !kvc.cache<1x8x?x128xf32>) {
  %a0 = kvc.append %c0, %k, %k : !kvc.cache<1x8x?x128xf32>, tensor<1x8x1x128xf32>, tensor<1x8x1x128xf32>
  %o0 = kvc.attend %q, %a0 {causal} : tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf32> -> tensor<1x32x1x128xf32>
  %a1 = kvc.append %c1, %k, %k : !kvc.cache<1x8x?x128xf32>, tensor<1x8x1x128xf32>, tensor<1x8x1x128xf32>
  %o1 = kvc.attend %o0, %a1 {causal} : tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf32> -> tensor<1x32x1x128xf32>
  return %o1, %a0, %a1 : tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf32>, !kvc.cache<1x8x?x128xf32>
}

// -----
// Without kvc.layer, layers follow the order of the caches; a fresh cache
// counts too, and forks carry the type to both continuations.
// Aliases are numbered per module: capture them again.
// DEFAULT: #[[KIVI_B:.*]] = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 128>
// DEFAULT-LABEL: func.func @fresh_and_forked
// DEFAULT: kvc.cache.empty() : !kvc.cache<1x2x?x64xf16, #[[KIVI_B]]>
// DEFAULT: kvc.fork %{{.*}} : !kvc.cache<1x2x?x64xf16, #[[KIVI_B]]>
// SPEC-DAG: #[[L0_B:.*]] = #kvc.encoding<key = #kvc.plain, value = #kvc.fp8<e4m3>, residual = 64>
// SPEC-DAG: #[[L1_B:.*]] = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 64>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 64>
// SPEC-LABEL: func.func @fresh_and_forked
// SPEC-SAME: !kvc.cache<1x2x?x64xbf16, #[[L0_B]]>
// SPEC: kvc.cache.empty() : !kvc.cache<1x2x?x64xbf16, #[[L1_B]]>
func.func @fresh_and_forked(%c: !kvc.cache<1x2x?x64xf32>, %k: tensor<1x2x1x64xf32>)
    -> (!kvc.cache<1x2x?x64xf32>, !kvc.cache<1x2x?x64xf32>, !kvc.cache<1x2x?x64xf32>) {
  %e = kvc.cache.empty() : !kvc.cache<1x2x?x64xf32>
  %a, %b = kvc.fork %e : !kvc.cache<1x2x?x64xf32>
  %a1 = kvc.append %a, %k, %k : !kvc.cache<1x2x?x64xf32>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  return %c, %a1, %b : !kvc.cache<1x2x?x64xf32>, !kvc.cache<1x2x?x64xf32>, !kvc.cache<1x2x?x64xf32>
}

// -----
// An encoding that is already there is kept.
// DEFAULT: #[[EXISTING:.*]] = #kvc.encoding<key = #kvc.quant<bits = 8, axis = token, group = 64>, value = #kvc.plain, residual = 0>
// DEFAULT-NOT: #kvc.encoding
// DEFAULT-LABEL: func.func @keeps_existing
// DEFAULT-SAME: !kvc.cache<1x2x?x64xf16, #[[EXISTING]]>
// SPEC: #[[EXISTING_S:.*]] = #kvc.encoding<key = #kvc.quant<bits = 8, axis = token, group = 64>, value = #kvc.plain, residual = 0>
// SPEC-NOT: #kvc.encoding
// SPEC-LABEL: func.func @keeps_existing
// SPEC-SAME: !kvc.cache<1x2x?x64xf16, #[[EXISTING_S]]>
func.func @keeps_existing(%c: !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 8, axis = token, group = 64>, value = #kvc.plain, residual = 0>>)
    -> !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 8, axis = token, group = 64>, value = #kvc.plain, residual = 0>> {
  return %c : !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 8, axis = token, group = 64>, value = #kvc.plain, residual = 0>>
}
