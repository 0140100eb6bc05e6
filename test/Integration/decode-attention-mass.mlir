// kvc.attend's attention mass (the scores H2O accumulates), compiled with
// kvc-cpu-pipeline, against the numerics oracle's mass
// (referenceAttention(..., mass)): every cached token's softmax probability
// summed over the 4 query heads of its KV head, for batch 2, 2 KV heads,
// 2-bit KIVI keys and values over 64-token pages (the residual window of 64
// flushes twice in 150 steps, so paged and staged tokens are both covered).
// The step pads the mass into a static 2x2x160 result (kvc-run's results
// are caller-allocated); kvc-run checks the padding stays 0.

// RUN: kvc-run %s --steps=150 | FileCheck %s

// CHECK: kvc-run: 150 steps, batch 2, 8 query / 2 KV heads, head_dim 64
// CHECK: attention mass: max |compiled - oracle| = {{.*}} (tolerance 1.00e-04)
// CHECK-NEXT: PASS

#kivi2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 64>
!cache = !kvc.cache<2x2x?x64xf32, #kivi2>
func.func @step(%cache: !cache, %q: tensor<2x8x1x64xf32>,
                %k: tensor<2x2x1x64xf32>, %v: tensor<2x2x1x64xf32>)
    -> (tensor<2x8x1x64xf32>, !cache, tensor<2x2x160xf32>) {
  %c = kvc.append %cache, %k, %v : !cache, tensor<2x2x1x64xf32>, tensor<2x2x1x64xf32>
  %o, %m = kvc.attend %q, %c {causal} : tensor<2x8x1x64xf32>, !cache -> tensor<2x8x1x64xf32>, tensor<2x2x?xf32>
  %zero = arith.constant 0.0 : f32
  %empty = tensor.empty() : tensor<2x2x160xf32>
  %zeros = linalg.fill ins(%zero : f32) outs(%empty : tensor<2x2x160xf32>) -> tensor<2x2x160xf32>
  %c2 = arith.constant 2 : index
  %n = tensor.dim %m, %c2 : tensor<2x2x?xf32>
  %padded = tensor.insert_slice %m into %zeros[0, 0, 0] [2, 2, %n] [1, 1, 1] : tensor<2x2x?xf32> into tensor<2x2x160xf32>
  return %o, %c, %padded : tensor<2x8x1x64xf32>, !cache, tensor<2x2x160xf32>
}
