// Decode steps compiled with kvc-cpu-pipeline against the numerics oracle,
// one per value layout of PageReader's span reads (foldChannels over a
// ChannelSpan), which the CPU loops' and the GPU split kernels' value
// passes both use, with the span width the GPU kernel would take
// (valueSpanChannels: up to 8 channels, at most 16 accumulators over the
// query heads of a KV head).
// GQA 2, head_dim 64: spans of 8 channels. 2- and 3-bit codes from a
// quarter of a packing unit (one shifted word, the 3-bit plane word),
// 4-bit codes one word, 8-bit codes one 8-byte load, fp8 one 8-byte load,
// fp16 one 16-byte load (pages and residual rows), channel-axis values two
// chunks of four (scale, zero) pairs.
// 300 steps, so the residual window flushes and pages are read. Keys stay
// fp16 unless noted, so kvc-run's check that the encoding moves the output
// by 10x the tolerance is about the values.

// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q2:token:g32,residual=128" | FileCheck %s --check-prefix=V0
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q3:token:g32,residual=128" | FileCheck %s --check-prefix=V1
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q4:token:g64,residual=128" | FileCheck %s --check-prefix=V2
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q8:token:g32,residual=128" | FileCheck %s --check-prefix=V3
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q2:channel:g32,residual=128" | FileCheck %s --check-prefix=V4
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q3:channel:g64,residual=128" | FileCheck %s --check-prefix=V5
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=fp8:e4m3,residual=128" | FileCheck %s --check-prefix=V6
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=fp16,residual=128" | FileCheck %s --check-prefix=V7

// V0: kvc-run: 300 steps, batch 1, 4 query / 2 KV heads, head_dim 64, key fp16, value quant<bits=2, axis=token, group=32>, residual 128
// V0-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V0-NEXT: PASS
// V1: kvc-run: 300 steps, batch 1, 4 query / 2 KV heads, head_dim 64, key fp16, value quant<bits=3, axis=token, group=32>, residual 128
// V1-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V1-NEXT: PASS
// V2: kvc-run: 300 steps, batch 1, 4 query / 2 KV heads, head_dim 64, key fp16, value quant<bits=4, axis=token, group=64>, residual 128
// V2-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V2-NEXT: PASS
// V3: kvc-run: 300 steps, batch 1, 4 query / 2 KV heads, head_dim 64, key fp16, value quant<bits=8, axis=token, group=32>, residual 128
// V3-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V3-NEXT: PASS
// V4: kvc-run: 300 steps, batch 1, 4 query / 2 KV heads, head_dim 64, key fp16, value quant<bits=2, axis=channel, group=32>, residual 128
// V4-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V4-NEXT: PASS
// V5: kvc-run: 300 steps, batch 1, 4 query / 2 KV heads, head_dim 64, key fp16, value quant<bits=3, axis=channel, group=64>, residual 128
// V5-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V5-NEXT: PASS
// V6: kvc-run: 300 steps, batch 1, 4 query / 2 KV heads, head_dim 64, key fp16, value fp8<e4m3>, residual 128
// V6-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V6-NEXT: PASS
// V7: kvc-run: 300 steps, batch 1, 4 query / 2 KV heads, head_dim 64, key fp16, value fp16, residual 128
// V7-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V7-NEXT: PASS

func.func @step(%cache: !kvc.cache<1x2x?x64xf32>, %q: tensor<1x4x1x64xf32>,
                %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x1x64xf32>) -> (tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x64xf32>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf32> -> tensor<1x4x1x64xf32>
  return %o, %c : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf32>
}
