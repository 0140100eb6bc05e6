// H2O eviction with one token budget per KV head (64, 24, 48 and 32 tokens,
// sink 4, window 16) on a 4-bit channel-key / 2-bit token-value cache,
// compiled with kvc-cpu-pipeline and run against the numerics oracle for
// 200 steps. Each step accumulates the attention mass the attention returns
// and evicts by it; kvc-run checks the outputs, the scores and, after every
// step, that each KV head's live tokens in the runtime are what
// selectKeptTokens keeps with that head's own budget. Over 200 tokens, the
// heads evict 136 + 176 + 152 + 168 tokens per sequence.

// RUN: kvc-run %s --steps=200 | FileCheck %s

// CHECK: kvc-run: 200 steps, batch 2, 8 query / 4 KV heads, head_dim 64
// CHECK: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// CHECK: attention scores: max |compiled - oracle| = {{.*}} (tolerance 1.00e-04)
// CHECK: eviction h2o:sink=4:window=16:budget=64:heads=64,24,48,32: 1264 tokens evicted, the runtime's live tokens equal the oracle's after every step; eviction moves the output by {{.*}}
// CHECK-NEXT: PASS

#enc = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>,
                     value = #kvc.quant<bits = 2, axis = token, group = 32>,
                     residual = 32,
                     evict = #kvc.evict<policy = h2o, sink = 4, window = 16, budget = 64,
                                        head_budgets = [64, 24, 48, 32]>>
!cache = !kvc.cache<2x4x?x64xf32, #enc>
func.func @step(%cache: !cache, %q: tensor<2x8x1x64xf32>,
                %k: tensor<2x4x1x64xf32>, %v: tensor<2x4x1x64xf32>,
                %scores: tensor<2x4x256xf32>)
    -> (tensor<2x8x1x64xf32>, !cache, tensor<2x4x256xf32>) {
  %c = kvc.append %cache, %k, %v : !cache, tensor<2x4x1x64xf32>, tensor<2x4x1x64xf32>
  %o, %m = kvc.attend %q, %c {causal} : tensor<2x8x1x64xf32>, !cache -> tensor<2x8x1x64xf32>, tensor<2x4x?xf32>
  %c2 = arith.constant 2 : index
  %n = tensor.dim %m, %c2 : tensor<2x4x?xf32>
  %before = tensor.extract_slice %scores[0, 0, 0] [2, 4, %n] [1, 1, 1] : tensor<2x4x256xf32> to tensor<2x4x?xf32>
  %sum = arith.addf %before, %m : tensor<2x4x?xf32>
  %after = tensor.insert_slice %sum into %scores[0, 0, 0] [2, 4, %n] [1, 1, 1] : tensor<2x4x?xf32> into tensor<2x4x256xf32>
  %c3 = kvc.evict %c scores(%sum : tensor<2x4x?xf32>) with <policy = h2o, sink = 4, window = 16, budget = 64, head_budgets = [64, 24, 48, 32]> : !cache
  return %o, %c3, %after : tensor<2x8x1x64xf32>, !cache, tensor<2x4x256xf32>
}
