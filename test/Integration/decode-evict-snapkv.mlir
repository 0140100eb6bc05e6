// SnapKV-style eviction (rank by the attention mass of the current query,
// no accumulation) on a 4-bit channel-key / 2-bit token-value cache with
// GQA 7, compiled with kvc-cpu-pipeline, against the numerics oracle. The
// step returns this step's mass as the scores it evicted by; kvc-run checks
// it against the oracle's mass, and the runtime's live tokens against
// selectKeptTokens on it, after every step.

// RUN: kvc-run %s --steps=160 | FileCheck %s

// CHECK: kvc-run: 160 steps, batch 1, 14 query / 2 KV heads, head_dim 64
// CHECK: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// CHECK: attention scores: max |compiled - oracle| = {{.*}} (tolerance 1.00e-04)
// CHECK: eviction snapkv:sink=2:window=8:budget=40: 240 tokens evicted, the runtime's live tokens equal the oracle's after every step
// CHECK-NEXT: PASS

#enc = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>,
                     value = #kvc.quant<bits = 2, axis = token, group = 32>,
                     residual = 32,
                     evict = #kvc.evict<policy = snapkv, sink = 2, window = 8, budget = 40>>
!cache = !kvc.cache<1x2x?x64xf32, #enc>
func.func @step(%cache: !cache, %q: tensor<1x14x1x64xf32>,
                %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x1x64xf32>,
                %unused: tensor<1x2x160xf32>)
    -> (tensor<1x14x1x64xf32>, !cache, tensor<1x2x160xf32>) {
  %c = kvc.append %cache, %k, %v : !cache, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o, %m = kvc.attend %q, %c {causal} : tensor<1x14x1x64xf32>, !cache -> tensor<1x14x1x64xf32>, tensor<1x2x?xf32>
  %zero = arith.constant 0.0 : f32
  %empty = tensor.empty() : tensor<1x2x160xf32>
  %zeros = linalg.fill ins(%zero : f32) outs(%empty : tensor<1x2x160xf32>) -> tensor<1x2x160xf32>
  %c2 = arith.constant 2 : index
  %n = tensor.dim %m, %c2 : tensor<1x2x?xf32>
  %padded = tensor.insert_slice %m into %zeros[0, 0, 0] [1, 2, %n] [1, 1, 1] : tensor<1x2x?xf32> into tensor<1x2x160xf32>
  %c3 = kvc.evict %c scores(%m : tensor<1x2x?xf32>) with <policy = snapkv, sink = 2, window = 8, budget = 40> : !cache
  return %o, %c3, %padded : tensor<1x14x1x64xf32>, !cache, tensor<1x2x160xf32>
}
