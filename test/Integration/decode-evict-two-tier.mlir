// Two-tier H2O eviction: the 48 heaviest tokens per KV head (sink 4,
// window 16) stay at 4 bits (keys per channel, values per token); every
// token H2O evicts is kept at 2 bits per token (demote_key / demote_value)
// instead of being dropped, and attention keeps attending to it. Compiled
// with kvc-cpu-pipeline and run for 200 steps against the numerics oracle,
// which re-encodes each evicted token's row (as the step read it) through
// the demotion encoding when it is evicted. kvc-run also checks, after every
// step, that the runtime's live tokens are selectKeptTokens'.

// RUN: kvc-run %s --steps=200 | FileCheck %s

// CHECK: kvc-run: 200 steps, batch 2, 8 query / 2 KV heads, head_dim 64
// CHECK: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// CHECK: attention scores: max |compiled - oracle| = {{.*}} (tolerance 1.00e-04)
// CHECK: eviction h2o:sink=4:window=16:budget=48: 608 tokens evicted (kept as key quant<bits=2, axis=token, group=32>, value quant<bits=2, axis=token, group=32>), the runtime's live tokens equal the oracle's after every step; eviction moves the output by {{.*}}
// CHECK-NEXT: PASS

#enc = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>,
                     value = #kvc.quant<bits = 4, axis = token, group = 32>,
                     residual = 64,
                     evict = #kvc.evict<policy = h2o, sink = 4, window = 16, budget = 48,
                                        demote_key = #kvc.quant<bits = 2, axis = token, group = 32>,
                                        demote_value = #kvc.quant<bits = 2, axis = token, group = 32>>>
!cache = !kvc.cache<2x2x?x64xf32, #enc>
func.func @step(%cache: !cache, %q: tensor<2x8x1x64xf32>,
                %k: tensor<2x2x1x64xf32>, %v: tensor<2x2x1x64xf32>,
                %scores: tensor<2x2x256xf32>)
    -> (tensor<2x8x1x64xf32>, !cache, tensor<2x2x256xf32>) {
  %c = kvc.append %cache, %k, %v : !cache, tensor<2x2x1x64xf32>, tensor<2x2x1x64xf32>
  %o, %m = kvc.attend %q, %c {causal} : tensor<2x8x1x64xf32>, !cache -> tensor<2x8x1x64xf32>, tensor<2x2x?xf32>
  %c2 = arith.constant 2 : index
  %n = tensor.dim %m, %c2 : tensor<2x2x?xf32>
  %before = tensor.extract_slice %scores[0, 0, 0] [2, 2, %n] [1, 1, 1] : tensor<2x2x256xf32> to tensor<2x2x?xf32>
  %sum = arith.addf %before, %m : tensor<2x2x?xf32>
  %after = tensor.insert_slice %sum into %scores[0, 0, 0] [2, 2, %n] [1, 1, 1] : tensor<2x2x?xf32> into tensor<2x2x256xf32>
  %c3 = kvc.evict %c scores(%sum : tensor<2x2x?xf32>) with <policy = h2o, sink = 4, window = 16, budget = 48, demote_key = #kvc.quant<bits = 2, axis = token, group = 32>, demote_value = #kvc.quant<bits = 2, axis = token, group = 32>> : !cache
  return %o, %c3, %after : tensor<2x8x1x64xf32>, !cache, tensor<2x2x256xf32>
}
