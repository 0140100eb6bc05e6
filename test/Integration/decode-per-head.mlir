// Decode steps of a cache with per-KV-head encodings (what
// kvc-select-bitwidths granularity=head writes), compiled with
// kvc-cpu-pipeline, against the numerics oracle applying each head's own
// encoding. 4 KV heads (GQA 2, 8 query heads), head_dim 64, batch 2, 300
// steps: the 64-token residual window flushes 4 times, so every head's
// blocks are read from 64-token pages at their per-head offsets. Heads 2
// and 3 share an encoding (one loop nest); 0 and 1 differ from each other
// on both sides. Tolerance as in decode-gqa4-d64.mlir.

// RUN: kvc-run %s --steps=300 | FileCheck %s

// CHECK: kvc-run: 300 steps, batch 2, 8 query / 4 KV heads, head_dim 64, key quant<bits=4, axis=channel, group=32>, value quant<bits=4, axis=token, group=32>, residual 64
// CHECK-NEXT: kvc-run: KV head 0: key quant<bits=4, axis=channel, group=32>, value quant<bits=2, axis=token, group=32>
// CHECK-NEXT: kvc-run: KV head 1: key quant<bits=2, axis=channel, group=64>, value quant<bits=4, axis=token, group=64>
// CHECK-NEXT: kvc-run: KV head 2: key fp8<e4m3>, value quant<bits=8, axis=token, group=32>
// CHECK-NEXT: kvc-run: KV head 3: key fp8<e4m3>, value quant<bits=8, axis=token, group=32>
// CHECK-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// CHECK-NEXT: PASS

#type = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>,
                      value = #kvc.quant<bits = 4, axis = token, group = 32>,
                      residual = 64>
#h0 = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>,
                    value = #kvc.quant<bits = 2, axis = token, group = 32>,
                    residual = 64>
#h1 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 64>,
                    value = #kvc.quant<bits = 4, axis = token, group = 64>,
                    residual = 64>
#h23 = #kvc.encoding<key = #kvc.fp8<e4m3>,
                     value = #kvc.quant<bits = 8, axis = token, group = 32>,
                     residual = 64>
!cache = !kvc.cache<2x4x?x64xf32, #type>
func.func @step(%cache: !cache {kvc.head_encodings = [#h0, #h1, #h23, #h23]},
                %q: tensor<2x8x1x64xf32>, %k: tensor<2x4x1x64xf32>,
                %v: tensor<2x4x1x64xf32>) -> (tensor<2x8x1x64xf32>, !cache) {
  %c = kvc.append %cache, %k, %v : !cache, tensor<2x4x1x64xf32>, tensor<2x4x1x64xf32>
  %o = kvc.attend %q, %c {causal} : tensor<2x8x1x64xf32>, !cache -> tensor<2x8x1x64xf32>
  return %o, %c : tensor<2x8x1x64xf32>, !cache
}
