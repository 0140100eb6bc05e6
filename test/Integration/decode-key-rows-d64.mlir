// Decode steps compiled with kvc-cpu-pipeline against the numerics oracle,
// one per key layout of PageReader's row reader (foldCompressedRow), which
// the CPU loops and the GPU split kernels both use for keys. head_dim 64:
// 16-byte row loads of token-axis codes (64, 32 and 16 channels a load, one
// or two groups a load, a group over two loads), the 3-bit unit path,
// channel-axis groups of one and two packing units, and 16 fp8 codes a load.
// GQA 4, 300 steps, so the residual window flushes and pages are read.
// Tolerance as in decode-gqa4-d64.mlir; for a lossy key encoding kvc-run
// also fails unless it moves the output by 10x the tolerance.

// RUN: kvc-run %s --steps=300 --spec="key=q3:channel:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=K0
// RUN: kvc-run %s --steps=300 --spec="key=q4:channel:g64,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=K1
// RUN: kvc-run %s --steps=300 --spec="key=q2:token:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=K2
// RUN: kvc-run %s --steps=300 --spec="key=q2:token:g64,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=K3
// RUN: kvc-run %s --steps=300 --spec="key=q3:token:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=K4
// RUN: kvc-run %s --steps=300 --spec="key=q4:token:g64,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=K5
// RUN: kvc-run %s --steps=300 --spec="key=q8:token:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=K6
// RUN: kvc-run %s --steps=300 --spec="key=fp8:e5m2,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=K7

// K0: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 64, key quant<bits=3, axis=channel, group=32>, value quant<bits=2, axis=token, group=32>, residual 128
// K0-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K0-NEXT: PASS
// K1: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 64, key quant<bits=4, axis=channel, group=64>, value quant<bits=2, axis=token, group=32>, residual 128
// K1-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K1-NEXT: PASS
// K2: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 64, key quant<bits=2, axis=token, group=32>, value quant<bits=2, axis=token, group=32>, residual 128
// K2-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K2-NEXT: PASS
// K3: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 64, key quant<bits=2, axis=token, group=64>, value quant<bits=2, axis=token, group=32>, residual 128
// K3-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K3-NEXT: PASS
// K4: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 64, key quant<bits=3, axis=token, group=32>, value quant<bits=2, axis=token, group=32>, residual 128
// K4-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K4-NEXT: PASS
// K5: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 64, key quant<bits=4, axis=token, group=64>, value quant<bits=2, axis=token, group=32>, residual 128
// K5-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K5-NEXT: PASS
// K6: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 64, key quant<bits=8, axis=token, group=32>, value quant<bits=2, axis=token, group=32>, residual 128
// K6-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K6-NEXT: PASS
// K7: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 64, key fp8<e5m2>, value quant<bits=2, axis=token, group=32>, residual 128
// K7-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K7-NEXT: PASS

func.func @step(%cache: !kvc.cache<1x2x?x64xf32>, %q: tensor<1x8x1x64xf32>,
                %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x1x64xf32>) -> (tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x64xf32>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf32> -> tensor<1x8x1x64xf32>
  return %o, %c : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf32>
}
