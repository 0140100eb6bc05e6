// Decode steps compiled with kvc-cpu-pipeline against the numerics oracle,
// one per value layout of PageReader's span reads (foldChannels over a
// ChannelSpan), which the CPU loops' and the GPU split kernels' value
// passes both use, with the span width the GPU kernel would take
// (valueSpanChannels: up to 8 channels, at most 16 accumulators over the
// query heads of a KV head).
// GQA 4, head_dim 96: spans of 4 channels over rows of three packing units
// (2-bit rows of 24 bytes, 3-bit rows of 36, 4-bit groups of 96 channels),
// 8-bit codes one word, fp16 one 8-byte load; V4 pairs channel-axis keys
// with channel-axis values (one chunk of four pairs).
// 300 steps, so the residual window flushes and pages are read. Keys stay
// fp16 unless noted, so kvc-run's check that the encoding moves the output
// by 10x the tolerance is about the values.

// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q2:token:g32,residual=64" | FileCheck %s --check-prefix=V0
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q3:token:g32,residual=64" | FileCheck %s --check-prefix=V1
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q4:token:g96,residual=64" | FileCheck %s --check-prefix=V2
// RUN: kvc-run %s --steps=300 --spec="key=fp16,value=q8:token:g32,residual=64" | FileCheck %s --check-prefix=V3
// RUN: kvc-run %s --steps=300 --spec="key=q2:channel:g32,value=q4:channel:g32,residual=64" | FileCheck %s --check-prefix=V4

// V0: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 96, key fp16, value quant<bits=2, axis=token, group=32>, residual 64
// V0-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V0-NEXT: PASS
// V1: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 96, key fp16, value quant<bits=3, axis=token, group=32>, residual 64
// V1-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V1-NEXT: PASS
// V2: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 96, key fp16, value quant<bits=4, axis=token, group=96>, residual 64
// V2-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V2-NEXT: PASS
// V3: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 96, key fp16, value quant<bits=8, axis=token, group=32>, residual 64
// V3-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V3-NEXT: PASS
// V4: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 96, key quant<bits=2, axis=channel, group=32>, value quant<bits=4, axis=channel, group=32>, residual 64
// V4-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// V4-NEXT: PASS

func.func @step(%cache: !kvc.cache<1x2x?x96xf32>, %q: tensor<1x8x1x96xf32>,
                %k: tensor<1x2x1x96xf32>, %v: tensor<1x2x1x96xf32>) -> (tensor<1x8x1x96xf32>, !kvc.cache<1x2x?x96xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x96xf32>, tensor<1x2x1x96xf32>, tensor<1x2x1x96xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x8x1x96xf32>, !kvc.cache<1x2x?x96xf32> -> tensor<1x8x1x96xf32>
  return %o, %c : tensor<1x8x1x96xf32>, !kvc.cache<1x2x?x96xf32>
}
