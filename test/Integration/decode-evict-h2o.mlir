// H2O eviction composed with 2-bit KIVI compression, compiled with
// kvc-cpu-pipeline and run against the numerics oracle: each step appends a
// token, attends over the live tokens while returning their attention mass,
// adds it to the accumulated scores the step carries, and evicts down to 48
// live tokens per KV head (sink 4, window 16, 28 heavy hitters). 200 steps
// with 64-token pages and residual window: pages whose tokens are all
// evicted go back to the pool. kvc-run checks the outputs (oracle attention
// over the oracle's live tokens), the accumulated scores (previous + the
// oracle's mass) and, after every step, that the runtime's live tokens equal
// the oracle's (selectKeptTokens on the step's scores).

// RUN: kvc-run %s --steps=200 | FileCheck %s

// CHECK: kvc-run: 200 steps, batch 2, 8 query / 2 KV heads, head_dim 64
// CHECK: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// CHECK: attention scores: max |compiled - oracle| = {{.*}} (tolerance 1.00e-04)
// CHECK: eviction h2o:sink=4:window=16:budget=48: 608 tokens evicted, the runtime's live tokens equal the oracle's after every step; eviction moves the output by {{.*}}
// CHECK-NEXT: PASS

#kivi2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 64,
                       evict = #kvc.evict<policy = h2o, sink = 4, window = 16, budget = 48>>
!cache = !kvc.cache<2x2x?x64xf32, #kivi2>
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
  %c3 = kvc.evict %c scores(%sum : tensor<2x2x?xf32>) with <policy = h2o, sink = 4, window = 16, budget = 48> : !cache
  return %o, %c3, %after : tensor<2x8x1x64xf32>, !cache, tensor<2x2x256xf32>
}
