// Decode steps compiled with kvc-cpu-pipeline against the numerics oracle,
// one per value layout of PageReader's span reads (foldChannels over a
// ChannelSpan), which the CPU loops' and the GPU split kernels' value
// passes both use, with the span width the GPU kernel would take
// (valueSpanChannels: up to 8 channels, at most 16 accumulators over the
// query heads of a KV head).
// GQA 2, head_dim 40: five spans of 8 channels: fp16 16-byte loads, fp8
// 8-byte loads, channel-axis values two chunks of four pairs.
// 300 steps, so the residual window flushes and pages are read. Keys stay
// fp16 unless noted, so kvc-run's check that the encoding moves the output
// by 10x the tolerance is about the values.

// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=fp8:e4m3,residual=64" | FileCheck %s --check-prefix=V0
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q4:channel:g32,residual=64" | FileCheck %s --check-prefix=V1
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=fp16,residual=64" | FileCheck %s --check-prefix=V2

// V0: kvc-run: 300 steps, batch 1, 4 query / 2 KV heads, head_dim 40, key fp16, value fp8<e4m3>, residual 64
// V0-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V0-NEXT: PASS
// V1: kvc-run: 300 steps, batch 1, 4 query / 2 KV heads, head_dim 40, key fp16, value quant<bits=4, axis=channel, group=32>, residual 64
// V1-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V1-NEXT: PASS
// V2: kvc-run: 300 steps, batch 1, 4 query / 2 KV heads, head_dim 40, key fp16, value fp16, residual 64
// V2-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V2-NEXT: PASS

func.func @step(%cache: !kvc.cache<1x2x?x40xf32>, %q: tensor<1x4x1x40xf32>,
                %k: tensor<1x2x1x40xf32>, %v: tensor<1x2x1x40xf32>) -> (tensor<1x4x1x40xf32>, !kvc.cache<1x2x?x40xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x40xf32>, tensor<1x2x1x40xf32>, tensor<1x2x1x40xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x4x1x40xf32>, !kvc.cache<1x2x?x40xf32> -> tensor<1x4x1x40xf32>
  return %o, %c : tensor<1x4x1x40xf32>, !kvc.cache<1x2x?x40xf32>
}
