// Decode steps compiled with kvc-gpu-pipeline, their kernels (append and
// attention, as LLVM bitcode) run by kvc's GPU emulator on the host cache
// (kvc-run --gpu-emulator; lib/GPUEmulator computes shfl.sync, mma.sync and
// barriers from the PTX ISA), against the numerics oracle: batch 2, GQA 4
// (8 query heads, 2 KV heads), head_dim 128 — Llama-3's grouping — 300
// steps, so the 128-token residual window flushes twice; the generated
// append must leave the pages and residual rows of kvc_rt_append after
// every step. With --key-reads=parts / --value-reads=f16 the attention
// runs the tensor-core passes (key-product=mma: token pairs for
// channel-axis 2/4/8-bit keys; value-product=mma: split-column m16n8k8 at
// GQA 4) and the oracle rounds to fp16 as they do. split-tokens=128 with
// split-blocks=0 gives up to three splits, so the combine kernel and the
// interior and edge unit loops all run. Tolerance: 1e-4 of max |output|.

// RUN: kvc-run %s --steps=300 --seed=1 --spec="key=q2:channel:g32,value=q2:token:g32,residual=128" --gpu-emulator | FileCheck %s --check-prefix=K2V2
// RUN: kvc-run %s --steps=300 --seed=2 --spec="key=q2:channel:g32,value=q2:token:g32,residual=128" --gpu-emulator --key-reads=parts --value-reads=f16 --gpu-options="split-tokens=128 split-blocks=0" | FileCheck %s --check-prefix=K2V2MMA
// RUN: kvc-run %s --steps=300 --seed=3 --spec="key=q4:channel:g128,value=q4:token:g128,residual=128" --page-tokens=128 --gpu-emulator --key-reads=parts --value-reads=f16 | FileCheck %s --check-prefix=K4V4MMA
// RUN: kvc-run %s --steps=300 --seed=4 --spec="key=q8:channel:g64,value=q8:token:g32,residual=64" --gpu-emulator --key-reads=parts --value-reads=f16 --gpu-options="split-tokens=128 split-blocks=0" | FileCheck %s --check-prefix=K8V8MMA
// RUN: kvc-run %s --steps=300 --seed=5 --spec="key=q3:token:g32,value=q4:channel:g32,residual=128" --gpu-emulator --key-reads=parts --value-reads=f16 | FileCheck %s --check-prefix=K3V4MMA
// RUN: kvc-run %s --steps=300 --seed=6 --spec="key=fp8:e4m3,value=fp16,residual=128" --gpu-emulator --key-reads=parts --value-reads=f16 | FileCheck %s --check-prefix=FP8MMA
//
// Tensor cores that flush fp16 subnormal inputs (the emulator's model,
// KVC_GPU_EMULATOR_MMA_SUBNORMALS=flush): the default reads, whose folded
// codes are subnormals, miss by errors of order 1; mma-codes=normal, whose
// operands are normals down to negligible terms, passes at 1e-4
// (docs/gpu-tensor-cores.md, "If the tensor cores flushed subnormals").
// RUN: env KVC_GPU_EMULATOR_MMA_SUBNORMALS=flush not kvc-run %s --steps=300 --seed=3 --spec="key=q4:channel:g128,value=q4:token:g128,residual=128" --page-tokens=128 --gpu-emulator --key-reads=parts --value-reads=f16 2>&1 | FileCheck %s --check-prefix=FLUSHED
// RUN: env KVC_GPU_EMULATOR_MMA_SUBNORMALS=flush kvc-run %s --steps=300 --seed=3 --spec="key=q4:channel:g128,value=q4:token:g128,residual=128" --page-tokens=128 --gpu-emulator --key-reads=parts --value-reads=f16 --gpu-options="mma-codes=normal" | FileCheck %s --check-prefix=NORMALFLUSHED
// RUN: env KVC_GPU_EMULATOR_MMA_SUBNORMALS=flush kvc-run %s --steps=300 --seed=4 --spec="key=q8:channel:g64,value=q8:token:g128,residual=64" --gpu-emulator --key-reads=parts --value-reads=f16 --gpu-options="split-tokens=128 split-blocks=0 mma-codes=normal" | FileCheck %s --check-prefix=NORMALFLUSHED8
//
// With l2-prefetch the split blocks first prefetch their page blocks into
// L2; kvc-run checks each prefetch against the cache (inside one head's
// block of a page holding compressed tokens, every head's as many). Bulk,
// split-tokens=128 (two 64-token pages a split): steps with 128 compressed
// tokens (n = 128 .. 255, 128 steps) prefetch 2 sequences x 2 heads x 2
// sides x 2 pages = 16 blocks, those with 256 (n = 256 .. 300, 45 steps)
// 32: 3488 blocks of 3072 bytes. Lines at the default split sizes.
// RUN: kvc-run %s --steps=300 --seed=2 --spec="key=q2:channel:g32,value=q2:token:g32,residual=128" --gpu-emulator --key-reads=parts --value-reads=f16 --gpu-options="split-tokens=128 split-blocks=0 l2-prefetch=bulk" | FileCheck %s --check-prefix=BULK
// RUN: kvc-run %s --steps=300 --seed=7 --spec="key=q4:channel:g128,value=q4:token:g128,residual=128" --page-tokens=128 --gpu-emulator --gpu-options="l2-prefetch=lines" | FileCheck %s --check-prefix=LINES
//
// With key-stages each warp of the tensor-core key pass copies its next
// units into shared-memory stages (cp.async) while it multiplies the
// current one; the emulator performs the copies at the wait on alternate
// launches and at issue on the others, so a read before the wait or a
// copy into a stage still being read gives wrong scores. One 512-token
// split (split-blocks=0): up to 8 interior units, two a warp, so the copy
// ahead runs; 3 stages with 128-token pages, group-128 keys and the L2
// prefetch. value-stages likewise for the value pass's 16-token blocks
// (dequantized g32 values, and g128 ones whose scales fold into the
// weights).
// RUN: kvc-run %s --steps=300 --seed=8 --spec="key=q2:channel:g32,value=q2:token:g32,residual=128" --gpu-emulator --key-reads=parts --value-reads=f16 --gpu-options="split-blocks=0 key-stages=2" | FileCheck %s --check-prefix=STAGES
// RUN: kvc-run %s --steps=300 --seed=9 --spec="key=q4:channel:g128,value=q2:token:g32,residual=128" --page-tokens=128 --gpu-emulator --key-reads=parts --value-reads=f16 --gpu-options="split-blocks=0 key-stages=3 l2-prefetch=bulk value-stages=2" | FileCheck %s --check-prefix=STAGES
// RUN: kvc-run %s --steps=300 --seed=10 --spec="key=q2:channel:g32,value=q4:token:g128,residual=128" --gpu-emulator --key-reads=parts --value-reads=f16 --gpu-options="split-blocks=0 key-stages=2 value-stages=3" | FileCheck %s --check-prefix=STAGES
//
// combine=fused: the split kernels' last block of each sequence and KV head
// merges the splits (no combine kernel), counting arrivals on counters it
// must leave at zero: a step that found one non-zero would merge early or
// never, and leave the output wrong or NaN. Up to three 128-token splits
// (split-blocks=0), with both passes on CUDA cores and on tensor cores.
// RUN: kvc-run %s --steps=300 --seed=12 --spec="key=q2:channel:g32,value=q2:token:g32,residual=128" --gpu-emulator --gpu-options="split-tokens=128 split-blocks=0 combine=fused" | FileCheck %s --check-prefix=FUSED
// RUN: kvc-run %s --steps=300 --seed=13 --spec="key=q2:channel:g128,value=q2:token:g128,residual=128" --page-tokens=128 --gpu-emulator --key-reads=parts --value-reads=f16 --gpu-options="split-tokens=128 split-blocks=0 combine=fused" | FileCheck %s --check-prefix=FUSED
//
// wait-on-return=false leaves out the host wait before each step returns;
// the emulator completes every launch before it returns, so this checks the
// option's way through the pipeline (the ordering is the caller's on a GPU:
// kvc_rt_cache_synchronize), 140 steps with one flush.
// RUN: kvc-run %s --steps=140 --seed=11 --spec="key=q4:channel:g32,value=q2:token:g32,residual=128" --gpu-emulator --gpu-options="wait-on-return=false" | FileCheck %s --check-prefix=NOWAIT

// NOWAIT: key quant<bits=4, axis=channel, group=32>, value quant<bits=2, axis=token, group=32>
// NOWAIT-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// NOWAIT-NEXT: generated append: pages and residual rows equal the runtime's append after every step
// NOWAIT-NEXT: PASS
// K2V2: key quant<bits=2, axis=channel, group=32>, value quant<bits=2, axis=token, group=32>
// K2V2-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K2V2-NEXT: generated append: pages and residual rows equal the runtime's append after every step
// K2V2-NEXT: PASS
// K2V2MMA: key quant<bits=2, axis=channel, group=32>, value quant<bits=2, axis=token, group=32>
// K2V2MMA-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// K2V2MMA-NEXT: generated append: pages and residual rows equal the runtime's append after every step
// K2V2MMA-NEXT: PASS
// K4V4MMA: key quant<bits=4, axis=channel, group=128>, value quant<bits=4, axis=token, group=128>
// K4V4MMA: PASS
// K8V8MMA: key quant<bits=8, axis=channel, group=64>, value quant<bits=8, axis=token, group=32>
// K8V8MMA: PASS
// K3V4MMA: key quant<bits=3, axis=token, group=32>, value quant<bits=4, axis=channel, group=32>
// K3V4MMA: PASS
// FP8MMA: key fp8<e4m3>, value fp16
// FP8MMA: PASS
// FLUSHED-DAG: kvc-run: error: the compiled step is further from the oracle than the tolerance
// FLUSHED-DAG: max |compiled - oracle| / max |oracle| = {{[0-9.]+}}e+00 (tolerance 1.00e-04)
// NORMALFLUSHED: key quant<bits=4, axis=channel, group=128>, value quant<bits=4, axis=token, group=128>
// NORMALFLUSHED: PASS
// NORMALFLUSHED8: key quant<bits=8, axis=channel, group=64>, value quant<bits=8, axis=token, group=128>
// NORMALFLUSHED8: PASS
// BULK: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// BULK: L2 prefetches: 0 lines, 3488 page blocks (10715136 bytes), each in one head's block of a page holding compressed tokens, as many for heads with blocks of one size
// BULK-NEXT: PASS
// LINES: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// LINES: L2 prefetches: {{[1-9][0-9]*}} lines, 0 page blocks (0 bytes), each in one head's block
// LINES-NEXT: PASS

func.func @step(%cache: !kvc.cache<2x2x?x128xf32>, %q: tensor<2x8x1x128xf32>,
                %k: tensor<2x2x1x128xf32>, %v: tensor<2x2x1x128xf32>) -> (tensor<2x8x1x128xf32>, !kvc.cache<2x2x?x128xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<2x2x?x128xf32>, tensor<2x2x1x128xf32>, tensor<2x2x1x128xf32>
  %o = kvc.attend %q, %c {causal} : tensor<2x8x1x128xf32>, !kvc.cache<2x2x?x128xf32> -> tensor<2x8x1x128xf32>
  return %o, %c : tensor<2x8x1x128xf32>, !kvc.cache<2x2x?x128xf32>
}
// STAGES: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// STAGES: PASS
// FUSED: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// FUSED-NEXT: generated append: pages and residual rows equal the runtime's append after every step
// FUSED-NEXT: PASS
