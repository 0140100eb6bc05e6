// Decode steps compiled with kvc-gpu-pipeline, kernels run by kvc's GPU
// emulator (see decode-gpu-emulated-gqa4-d128.mlir): GQA 7 (14 query heads,
// 2 KV heads), head_dim 64, 300 steps. Past 4 query heads a KV head the
// tensor-core value pass puts the weights' hi and lo parts in m16n8k16's
// reduction halves (not m16n8k8's columns), and a key tile's N holds 7 of
// its 8 columns.

// RUN: kvc-run %s --steps=300 --seed=1 --spec="key=q2:channel:g32,value=q2:token:g32,residual=64" --gpu-emulator --key-reads=parts --value-reads=f16 --gpu-options="split-tokens=128 split-blocks=0" | FileCheck %s --check-prefix=K2V2MMA
// RUN: kvc-run %s --steps=300 --seed=2 --spec="key=q4:token:g32,value=q3:token:g64,residual=64" --gpu-emulator | FileCheck %s --check-prefix=K4V3
// RUN: kvc-run %s --steps=300 --seed=3 --spec="key=q4:channel:g64,value=fp8:e5m2,residual=128" --gpu-emulator --key-reads=parts --value-reads=f16 | FileCheck %s --check-prefix=K4FP8MMA

// K2V2MMA: 300 steps, batch 1, 14 query / 2 KV heads, head_dim 64
// K2V2MMA: generated append: pages and residual rows equal the runtime's append after every step
// K2V2MMA-NEXT: PASS
// K4V3: key quant<bits=4, axis=token, group=32>, value quant<bits=3, axis=token, group=64>
// K4V3: PASS
// K4FP8MMA: key quant<bits=4, axis=channel, group=64>, value fp8<e5m2>
// K4FP8MMA: PASS

// Bad options are errors, exit 1.
// RUN: not kvc-run %s --gpu-options="split-tokens=128" 2>&1 | FileCheck %s --check-prefix=NOEMU
// NOEMU: kvc-run: error: --gpu-options needs --gpu-emulator
// RUN: not kvc-run %s --gpu-emulator --gpu-options="key-product=mma" 2>&1 | FileCheck %s --check-prefix=OWN
// OWN: error: kvc-gpu-pipeline options 'key-product=mma': key-product is set by the caller
// RUN: not kvc-run %s --gpu-emulator --gpu-options="split-tokens=many" 2>&1 | FileCheck %s --check-prefix=PARSE
// PARSE: for the --split-tokens option: 'many' value invalid
// PARSE: error: kvc-gpu-pipeline options 'split-tokens=many' do not parse
// RUN: not kvc-run %s --gpu-emulator --gpu-options="split-tokens=100" 2>&1 | FileCheck %s --check-prefix=SPLIT
// SPLIT: error: kvc-lower-to-gpu: split-tokens
// RUN: not kvc-run %s --gpu-emulator --gpu-options="chip=sm_90x" 2>&1 | FileCheck %s --check-prefix=CHIP
// CHIP: error: kvc-gpu-pipeline: chip 'sm_90x' is not a processor of LLVM's NVPTX backend

func.func @step(%cache: !kvc.cache<1x2x?x64xf32>, %q: tensor<1x14x1x64xf32>,
                %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x1x64xf32>) -> (tensor<1x14x1x64xf32>, !kvc.cache<1x2x?x64xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x64xf32>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x14x1x64xf32>, !kvc.cache<1x2x?x64xf32> -> tensor<1x14x1x64xf32>
  return %o, %c : tensor<1x14x1x64xf32>, !kvc.cache<1x2x?x64xf32>
}
