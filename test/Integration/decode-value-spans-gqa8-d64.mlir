// Decode steps compiled with kvc-cpu-pipeline against the numerics oracle,
// one per value layout of PageReader's span reads (foldChannels over a
// ChannelSpan), which the CPU loops' and the GPU split kernels' value
// passes both use, with the span width the GPU kernel would take
// (valueSpanChannels: up to 8 channels, at most 16 accumulators over the
// query heads of a KV head).
// GQA 8, head_dim 64: spans of 2 channels: 2-, 3-, 4- and 8-bit codes a
// few bits of one word, fp16 4-byte and fp8 2-byte loads, channel-axis
// values one chunk of two pairs.
// 300 steps, so the residual window flushes and pages are read. Keys stay
// fp16 unless noted, so kvc-run's check that the encoding moves the output
// by 10x the tolerance is about the values.

// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q2:token:g32,residual=64" | FileCheck %s --check-prefix=V0
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q3:token:g64,residual=64" | FileCheck %s --check-prefix=V1
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q4:token:g32,residual=64" | FileCheck %s --check-prefix=V2
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q8:token:g64,residual=64" | FileCheck %s --check-prefix=V3
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=fp8:e5m2,residual=64" | FileCheck %s --check-prefix=V4
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q4:channel:g32,residual=64" | FileCheck %s --check-prefix=V5
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=fp16,residual=64" | FileCheck %s --check-prefix=V6

// V0: kvc-run: 300 steps, batch 1, 8 query / 1 KV heads, head_dim 64, key fp16, value quant<bits=2, axis=token, group=32>, residual 64
// V0-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V0-NEXT: PASS
// V1: kvc-run: 300 steps, batch 1, 8 query / 1 KV heads, head_dim 64, key fp16, value quant<bits=3, axis=token, group=64>, residual 64
// V1-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V1-NEXT: PASS
// V2: kvc-run: 300 steps, batch 1, 8 query / 1 KV heads, head_dim 64, key fp16, value quant<bits=4, axis=token, group=32>, residual 64
// V2-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V2-NEXT: PASS
// V3: kvc-run: 300 steps, batch 1, 8 query / 1 KV heads, head_dim 64, key fp16, value quant<bits=8, axis=token, group=64>, residual 64
// V3-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V3-NEXT: PASS
// V4: kvc-run: 300 steps, batch 1, 8 query / 1 KV heads, head_dim 64, key fp16, value fp8<e5m2>, residual 64
// V4-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V4-NEXT: PASS
// V5: kvc-run: 300 steps, batch 1, 8 query / 1 KV heads, head_dim 64, key fp16, value quant<bits=4, axis=channel, group=32>, residual 64
// V5-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V5-NEXT: PASS
// V6: kvc-run: 300 steps, batch 1, 8 query / 1 KV heads, head_dim 64, key fp16, value fp16, residual 64
// V6-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V6-NEXT: PASS

func.func @step(%cache: !kvc.cache<1x1x?x64xf32>, %q: tensor<1x8x1x64xf32>,
                %k: tensor<1x1x1x64xf32>, %v: tensor<1x1x1x64xf32>) -> (tensor<1x8x1x64xf32>, !kvc.cache<1x1x?x64xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x1x?x64xf32>, tensor<1x1x1x64xf32>, tensor<1x1x1x64xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x8x1x64xf32>, !kvc.cache<1x1x?x64xf32> -> tensor<1x8x1x64xf32>
  return %o, %c : tensor<1x8x1x64xf32>, !kvc.cache<1x1x?x64xf32>
}
