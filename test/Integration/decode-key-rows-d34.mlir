// Decode steps compiled with kvc-cpu-pipeline against the numerics oracle,
// one per key layout of PageReader's row reader (foldCompressedRow), which
// the CPU loops and the GPU split kernels both use for keys. head_dim 34:
// every path's one-channel fallback (34 is not a multiple of 4).
// GQA 4, 300 steps, so the residual window flushes and pages are read.
// Tolerance as in decode-gqa4-d64.mlir; for a lossy key encoding kvc-run
// also fails unless it moves the output by 10x the tolerance.

// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=fp16,residual=64" | FileCheck %s --check-prefix=K0
// RUN: kvc-run %s --steps=300 --spec="key=fp8:e4m3,value=fp16,residual=64" | FileCheck %s --check-prefix=K1
// RUN: kvc-run %s --steps=300 --spec="key=q2:channel:g32,value=fp16,residual=64" | FileCheck %s --check-prefix=K2

// K0: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 34, key fp16, value fp16, residual 64
// K0-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K0-NEXT: PASS
// K1: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 34, key fp8<e4m3>, value fp16, residual 64
// K1-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K1-NEXT: PASS
// K2: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 34, key quant<bits=2, axis=channel, group=32>, value fp16, residual 64
// K2-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K2-NEXT: PASS

func.func @step(%cache: !kvc.cache<1x2x?x34xf32>, %q: tensor<1x8x1x34xf32>,
                %k: tensor<1x2x1x34xf32>, %v: tensor<1x2x1x34xf32>) -> (tensor<1x8x1x34xf32>, !kvc.cache<1x2x?x34xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x34xf32>, tensor<1x2x1x34xf32>, tensor<1x2x1x34xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x8x1x34xf32>, !kvc.cache<1x2x?x34xf32> -> tensor<1x8x1x34xf32>
  return %o, %c : tensor<1x8x1x34xf32>, !kvc.cache<1x2x?x34xf32>
}
