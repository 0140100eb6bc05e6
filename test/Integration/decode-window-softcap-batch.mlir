// Sliding window (64 tokens), a soft cap and a batch of 3 sequences over a
// K4/V2 cache with a 32-token residual window: 200 steps cross many flushes
// and the window slides over compressed and residual tokens alike.
// RUN: kvc-run %s --steps=200 --spec="key=q4:channel:g32,value=q2:token:g32,residual=32" | FileCheck %s
// Pages of 32 tokens instead of the default 64:
// RUN: kvc-run %s --steps=200 --page-tokens=32 --spec="key=q2:channel:g32,value=q4:token:g64,residual=64" | FileCheck %s
// CHECK: kvc-run: 200 steps, batch 3, 8 query / 2 KV heads, head_dim 64
// CHECK-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// CHECK-NEXT: PASS

func.func @step(%cache: !kvc.cache<3x2x?x64xf32>, %q: tensor<3x8x1x64xf32>,
                %k: tensor<3x2x1x64xf32>, %v: tensor<3x2x1x64xf32>)
    -> (tensor<3x8x1x64xf32>, !kvc.cache<3x2x?x64xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<3x2x?x64xf32>, tensor<3x2x1x64xf32>, tensor<3x2x1x64xf32>
  %o = kvc.attend %q, %c {causal, window = 64 : i64, softcap = 5.0 : f32, scale = 0.2 : f32} : tensor<3x8x1x64xf32>, !kvc.cache<3x2x?x64xf32> -> tensor<3x8x1x64xf32>
  return %o, %c : tensor<3x8x1x64xf32>, !kvc.cache<3x2x?x64xf32>
}
