// Decode steps compiled with kvc-cpu-pipeline's value-reads=f16 against the
// numerics oracle: every dequantized value is rounded to fp16 before its
// weighted sum (kvc-run's oracle rounds the values too), which is what the
// GPU's tensor-core value pass (kvc-lower-to-gpu value-product=mma) gives
// its mma.sync, but the fragment layout and the weights' hi/lo split.
// Token-axis 2-, 4- and 8-bit values at head_dim 64 and 128 are read as
// that pass reads them, a D/8-channel slab dequantized straight into fp16
// pairs (PageReader::compressedHalfPairs: codes in the mantissas of 1024.0,
// one fp16 fma a pair) in the codes' bit order; swapping the two channels
// of each pair moves the first run's error to 1.9. Here
// for every value layout that pass reads: 2/3/4/8-bit token-axis values
// (groups 32 and 64), 2/3/4/8-bit channel-axis values (groups 32 and 128 on
// 128-token pages), fp16 and both fp8 formats; with key-reads=parts too
// (both passes as on tensor cores). GQA 4, head_dim 128 and 64, 300 steps,
// so the residual window flushes and pages are read; tolerance and the
// moved-output guard as in decode-gqa4-d128.mlir. (With an oracle that does
// not round, the 8-bit and fp16 runs fail: the rounding is seen.)

// RUN: kvc-run %s --entry=step --steps=300 --value-reads=f16 --spec="key=q2:channel:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --value-reads=f16 --spec="key=q2:channel:g32,value=q3:token:g64,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --value-reads=f16 --spec="key=q4:token:g32,value=q4:token:g32,residual=0" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --value-reads=f16 --spec="key=q8:channel:g32,value=q8:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --value-reads=f16 --spec="key=q2:channel:g32,value=q2:channel:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --value-reads=f16 --spec="key=q2:channel:g32,value=q3:channel:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --value-reads=f16 --page-tokens=128 --spec="key=q4:channel:g32,value=q4:channel:g128,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --value-reads=f16 --spec="key=q2:channel:g32,value=q8:channel:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --value-reads=f16 --spec="key=q2:channel:g32,value=fp8:e4m3,residual=64" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --value-reads=f16 --spec="key=q4:token:g32,value=fp8:e5m2,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step --steps=300 --value-reads=f16 --spec="key=q2:channel:g32,value=fp16,residual=128" | FileCheck %s --check-prefix=FP16
// RUN: kvc-run %s --entry=step --steps=300 --value-reads=f16 --key-reads=parts --spec="key=q2:channel:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step_d64 --steps=300 --value-reads=f16 --spec="key=q2:channel:g32,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=PASS
// RUN: kvc-run %s --entry=step_d64 --steps=300 --value-reads=f16 --key-reads=parts --spec="key=q4:token:g64,value=q4:channel:g32,residual=128" | FileCheck %s --check-prefix=PASS

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
