// Decode steps whose kvc.append is written by generated loops
// (kvc-lower-to-loops append=generated: kvc_rt_mlir_reserve_append, then
// AppendWriter, the emitter the GPU append kernel runs). kvc-run appends
// the same tokens to a twin cache with the runtime's kvc_rt_append and
// requires the same pages and residual rows, byte for byte, after every
// step; the attention is checked against the oracle as usual. Every bit
// width, both axes on both sides, groups 32 to 128, fp16 and fp8 pages (per-
// token scales through FP8Quantizer), no residual
// window (R = 0), batch 2 with GQA 4, per-head encodings, and a cache with
// evictions (holes in the page table; no twin there, the oracle checks it).

// RUN: kvc-run %s --steps=200 --append=generated --spec="key=q2:channel:g32,value=q2:token:g32,residual=64" | FileCheck %s --check-prefix=KIVI2
// RUN: kvc-run %s --steps=200 --append=generated --spec="key=q3:channel:g64,value=q3:token:g64,residual=128" | FileCheck %s --check-prefix=Q3
// RUN: kvc-run %s --steps=200 --append=generated --spec="key=q4:token:g32,value=q4:channel:g32,residual=32" | FileCheck %s --check-prefix=Q4
// RUN: kvc-run %s --steps=300 --page-tokens=128 --append=generated --spec="key=q8:channel:g128,value=q8:token:g64,residual=128" | FileCheck %s --check-prefix=Q8
// RUN: kvc-run %s --steps=150 --append=generated --spec="key=fp16,value=fp16,residual=64" | FileCheck %s --check-prefix=FP16
// RUN: kvc-run %s --steps=150 --append=generated --spec="key=fp16,value=q2:token:g32,residual=0" | FileCheck %s --check-prefix=R0
// RUN: kvc-run %s --steps=150 --append=generated --spec="key=fp8:e4m3,value=fp8:e5m2,residual=64" | FileCheck %s --check-prefix=FP8
// RUN: kvc-run %s --steps=150 --append=generated --spec="key=q2:channel:g32,value=fp8:e4m3,residual=32" | FileCheck %s --check-prefix=FP8V
// RUN: kvc-run %S/Inputs/append_per_head.mlir --steps=200 --append=generated | FileCheck %s --check-prefix=HEADS
// RUN: kvc-run %S/decode-window-softcap-batch.mlir --steps=200 --page-tokens=32 --append=generated --spec="key=q2:channel:g32,value=q4:token:g64,residual=64" | FileCheck %s --check-prefix=BATCH3
// RUN: kvc-run %S/decode-evict-two-tier.mlir --steps=200 --append=generated | FileCheck %s --check-prefix=EVICT
// RUN: kvc-run %S/decode-evict-h2o.mlir --steps=200 --append=generated | FileCheck %s --check-prefix=EVICT

// KIVI2: kvc-run: 200 steps, batch 2, 8 query / 2 KV heads, head_dim 64, key quant<bits=2, axis=channel, group=32>, value quant<bits=2, axis=token, group=32>, residual 64
// KIVI2: generated append: pages and residual rows equal the runtime's append after every step
// KIVI2-NEXT: PASS
// Q3: key quant<bits=3, axis=channel, group=64>, value quant<bits=3, axis=token, group=64>, residual 128
// Q3: generated append: pages and residual rows equal the runtime's append after every step
// Q3-NEXT: PASS
// Q4: key quant<bits=4, axis=token, group=32>, value quant<bits=4, axis=channel, group=32>, residual 32
// Q4: generated append: pages and residual rows equal the runtime's append after every step
// Q4-NEXT: PASS
// Q8: key quant<bits=8, axis=channel, group=128>, value quant<bits=8, axis=token, group=64>, residual 128
// Q8: generated append: pages and residual rows equal the runtime's append after every step
// Q8-NEXT: PASS
// FP16: key fp16, value fp16, residual 64
// FP16: generated append: pages and residual rows equal the runtime's append after every step
// FP16-NEXT: PASS
// R0: key fp16, value quant<bits=2, axis=token, group=32>, residual 0
// R0: generated append: pages and residual rows equal the runtime's append after every step
// R0-NEXT: PASS
// FP8: key fp8<e4m3>, value fp8<e5m2>, residual 64
// FP8: generated append: pages and residual rows equal the runtime's append after every step
// FP8-NEXT: PASS
// FP8V: key quant<bits=2, axis=channel, group=32>, value fp8<e4m3>, residual 32
// FP8V: generated append: pages and residual rows equal the runtime's append after every step
// FP8V-NEXT: PASS
// HEADS: kvc-run: KV head 0: key quant<bits=4, axis=channel, group=32>, value quant<bits=2, axis=token, group=32>
// HEADS: kvc-run: KV head 2: key fp16, value quant<bits=8, axis=token, group=32>
// HEADS: generated append: pages and residual rows equal the runtime's append after every step
// HEADS-NEXT: PASS
// BATCH3: kvc-run: 200 steps, batch 3,
// BATCH3: generated append: pages and residual rows equal the runtime's append after every step
// BATCH3-NEXT: PASS
// EVICT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// EVICT-NOT: generated append
// EVICT: PASS

func.func @step(%cache: !kvc.cache<2x2x?x64xf32>, %q: tensor<2x8x1x64xf32>,
                %k: tensor<2x2x1x64xf32>, %v: tensor<2x2x1x64xf32>) -> (tensor<2x8x1x64xf32>, !kvc.cache<2x2x?x64xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<2x2x?x64xf32>, tensor<2x2x1x64xf32>, tensor<2x2x1x64xf32>
  %o = kvc.attend %q, %c {causal} : tensor<2x8x1x64xf32>, !kvc.cache<2x2x?x64xf32> -> tensor<2x8x1x64xf32>
  return %o, %c : tensor<2x8x1x64xf32>, !kvc.cache<2x2x?x64xf32>
}

