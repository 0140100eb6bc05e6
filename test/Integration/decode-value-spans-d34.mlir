// Decode steps compiled with kvc-cpu-pipeline against the numerics oracle,
// one per value layout of PageReader's span reads (foldChannels over a
// ChannelSpan), which the CPU loops' and the GPU split kernels' value
// passes both use, with the span width the GPU kernel would take
// (valueSpanChannels: up to 8 channels, at most 16 accumulators over the
// query heads of a KV head).
// GQA 4, head_dim 34, which only 2 divides: spans of 2 channels, fp16
// 4-byte and fp8 2-byte loads, channel-axis (scale, zero) pairs two a load.
// 300 steps, so the residual window flushes and pages are read. Keys stay
// fp16 unless noted, so kvc-run's check that the encoding moves the output
// by 10x the tolerance is about the values.

// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=fp8:e5m2,residual=64" | FileCheck %s --check-prefix=V0
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q2:channel:g32,residual=64" | FileCheck %s --check-prefix=V1
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=fp16,residual=64" | FileCheck %s --check-prefix=V2

// V0: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 34, key fp16, value fp8<e5m2>, residual 64
// V0-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V0-NEXT: PASS
// V1: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 34, key fp16, value quant<bits=2, axis=channel, group=32>, residual 64
// V1-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V1-NEXT: PASS
// V2: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 34, key fp16, value fp16, residual 64
// V2-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V2-NEXT: PASS

func.func @step(%cache: !kvc.cache<1x2x?x34xf32>, %q: tensor<1x8x1x34xf32>,
                %k: tensor<1x2x1x34xf32>, %v: tensor<1x2x1x34xf32>) -> (tensor<1x8x1x34xf32>, !kvc.cache<1x2x?x34xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x34xf32>, tensor<1x2x1x34xf32>, tensor<1x2x1x34xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x8x1x34xf32>, !kvc.cache<1x2x?x34xf32> -> tensor<1x8x1x34xf32>
  return %o, %c : tensor<1x8x1x34xf32>, !kvc.cache<1x2x?x34xf32>
}
