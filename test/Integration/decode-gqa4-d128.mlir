// Decode steps compiled with kvc-cpu-pipeline against the numerics oracle:
// GQA 4 (8 query heads, 2 KV heads), head_dim 128, 300 steps, so
// the 128-token residual window flushes twice. Tolerance: the compiled
// loops read exactly the dequantized values the oracle uses, so only f32
// vs fp64 rounding separates them: 1e-4 of max |output| (measured ~3e-6).
// kvc-run also fails if an encoding moves the output by less than 10x the
// tolerance, so a silently dropped encoding cannot pass.

// RUN: kvc-run %s --steps=300 --spec="key=q2:channel:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=K2V2
// RUN: kvc-run %s --steps=300 --spec="key=q4:channel:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=K4V2
// RUN: kvc-run %s --steps=300 --spec="key=q8:channel:g32,value=q8:token:g32,residual=128" | FileCheck %s --check-prefix=K8V8
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=fp16,residual=128" | FileCheck %s --check-prefix=FP16

// K2V2: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 128, key quant<bits=2, axis=channel, group=32>, value quant<bits=2, axis=token, group=32>, residual 128
// K2V2-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K2V2-NEXT: PASS
// K4V2: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 128, key quant<bits=4, axis=channel, group=32>, value quant<bits=2, axis=token, group=32>, residual 128
// K4V2-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K4V2-NEXT: PASS
// K8V8: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 128, key quant<bits=8, axis=channel, group=32>, value quant<bits=8, axis=token, group=32>, residual 128
// K8V8-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K8V8-NEXT: PASS
// FP16: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 128, key fp16, value fp16, residual 128
// FP16-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// FP16-NEXT: PASS

func.func @step(%cache: !kvc.cache<1x2x?x128xf32>, %q: tensor<1x8x1x128xf32>,
                %k: tensor<1x2x1x128xf32>, %v: tensor<1x2x1x128xf32>) -> (tensor<1x8x1x128xf32>, !kvc.cache<1x2x?x128xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x128xf32>, tensor<1x2x1x128xf32>, tensor<1x2x1x128xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x8x1x128xf32>, !kvc.cache<1x2x?x128xf32> -> tensor<1x8x1x128xf32>
  return %o, %c : tensor<1x8x1x128xf32>, !kvc.cache<1x2x?x128xf32>
}
