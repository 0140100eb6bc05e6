// Decode steps compiled with kvc-cpu-pipeline's key-reads=parts against the
// numerics oracle: every key row is read in 16-channel parts, each located
// and read on its own, and queries and keys are rounded to fp16 before
// their products (kvc-run's oracle rounds them too; with fp16 keys and
// values that rounding alone moves the output by about 1e-3, ten times the
// tolerance): what the GPU's
// tensor-core key pass (kvc-lower-to-gpu key-product=mma) does for a
// lane's slab, but mma.sync and the fragment layout. Channel-axis 2-, 4-
// and 8-bit keys go through that pass's token pairs (the 32-token unit's
// codes two tokens to an fp16 pair, one fp16 fma, channel pairs
// transposed; the lane group, tile and row that hold the token picked;
// with the rows' order swapped the error is 2.0). Here for
// every key layout that pass reads: 2/3/4/8-bit channel-axis keys (groups
// 32, 64, and 128 on 128-token pages), 2/3/4/8-bit token-axis keys (groups
// 32 and 64), fp16 and both fp8 formats. GQA 4, head_dim 128 (parts at
// channels 0, 16, ..., 112) and 64, 300 steps, so the residual window
// flushes and pages are read; tolerance and the moved-output guard as in
// decode-gqa4-d128.mlir.

// RUN: kvc-run %s --entry=step --steps=300 --key-reads=parts --spec="key=q2:channel:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --key-reads=parts --spec="key=q3:channel:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --key-reads=parts --spec="key=q4:channel:g64,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --key-reads=parts --spec="key=q8:channel:g32,value=q8:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --key-reads=parts --page-tokens=128 --spec="key=q2:channel:g128,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --key-reads=parts --spec="key=q2:token:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --key-reads=parts --spec="key=q3:token:g64,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --key-reads=parts --spec="key=q4:token:g32,value=q4:token:g32,residual=0" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --key-reads=parts --spec="key=q8:token:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --key-reads=parts --spec="key=fp16,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=FP16
// RUN: kvc-run %s --entry=step --steps=300 --key-reads=parts --spec="key=fp8:e4m3,value=q2:token:g32,residual=64" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --key-reads=parts --spec="key=fp8:e5m2,value=q4:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step_d64 --steps=300 --key-reads=parts --spec="key=q2:channel:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step_d64 --steps=300 --key-reads=parts --spec="key=q4:token:g64,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=PASS

// PASS: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04); compression moves the output by
// PASS-NEXT: PASS
// FP16: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// FP16: PASS

func.func @step(%cache: !kvc.cache<1x2x?x128xf32>, %q: tensor<1x8x1x128xf32>,
                %k: tensor<1x2x1x128xf32>, %v: tensor<1x2x1x128xf32>) -> (tensor<1x8x1x128xf32>, !kvc.cache<1x2x?x128xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x128xf32>, tensor<1x2x1x128xf32>, tensor<1x2x1x128xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x8x1x128xf32>, !kvc.cache<1x2x?x128xf32> -> tensor<1x8x1x128xf32>
  return %o, %c : tensor<1x8x1x128xf32>, !kvc.cache<1x2x?x128xf32>
}

func.func @step_d64(%cache: !kvc.cache<1x2x?x64xf32>, %q: tensor<1x8x1x64xf32>,
                    %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x1x64xf32>) -> (tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x64xf32>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf32> -> tensor<1x8x1x64xf32>
  return %o, %c : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf32>
}
