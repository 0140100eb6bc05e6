// StreamingLLM eviction (4 sink tokens + a 60-token window) on an fp8 key /
// 4-bit value cache, compiled with kvc-cpu-pipeline, against the numerics
// oracle attending over the same live tokens. 64-token pages and residual
// window, 260 steps: whole pages leave the window and go back to the pool,
// while the page holding the sink tokens stays. kvc-run checks after every
// step that the runtime's live tokens are the sink and the window.

// RUN: kvc-run %s --steps=260 | FileCheck %s

// CHECK: kvc-run: 260 steps, batch 1, 4 query / 1 KV heads, head_dim 128
// CHECK: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// CHECK: eviction streaming:sink=4:window=60:budget=64: 196 tokens evicted, the runtime's live tokens equal the oracle's after every step
// CHECK-NEXT: PASS

#enc = #kvc.encoding<key = #kvc.fp8<e4m3>,
                     value = #kvc.quant<bits = 4, axis = token, group = 32>,
                     residual = 64,
                     evict = #kvc.evict<policy = streaming, sink = 4, window = 60, budget = 64>>
!cache = !kvc.cache<1x1x?x128xf32, #enc>
func.func @step(%cache: !cache, %q: tensor<1x4x1x128xf32>,
                %k: tensor<1x1x1x128xf32>, %v: tensor<1x1x1x128xf32>)
    -> (tensor<1x4x1x128xf32>, !cache) {
  %c = kvc.append %cache, %k, %v : !cache, tensor<1x1x1x128xf32>, tensor<1x1x1x128xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x4x1x128xf32>, !cache -> tensor<1x4x1x128xf32>
  %c2 = kvc.evict %c with <policy = streaming, sink = 4, window = 60, budget = 64> : !cache
  return %o, %c2 : tensor<1x4x1x128xf32>, !cache
}
