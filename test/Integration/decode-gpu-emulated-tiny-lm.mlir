// REQUIRES: shared-models
// The generated GPU kernels on real attention inputs: the trained tiny-lm's
// recorded post-RoPE q, k, v (../shared/models/tiny-lm/qkv_layers.safetensors:
// 8 query / 2 KV heads, head_dim 64, 1024 tokens of text a layer), one
// token a decode step, compiled with kvc-gpu-pipeline and run by kvc's GPU
// emulator (kvc-run --gpu-emulator --qkv), against the numerics oracle over
// the same compressed cache. Real keys have outlier channels and real
// softmaxes are peaked, unlike the random tokens of the other tests: what
// the folded scales (channel-axis key scales in the queries, whole-head
// value scales in the weights), the fp16 hi/lo weights and the codes read
// as fp16 subnormals must survive. 1024 steps cover 8 flushes of the
// 128-token residual window. Tolerance: 1e-4 of max |output| (measured
// 3e-7 to 2e-5, the larger under the emulator's flushing tensor cores).

// KIVI-2 on both tensor-core passes, a whole layer (1024 steps).
// RUN: kvc-run %s --steps=1024 --qkv=%shared_models/tiny-lm/qkv_layers.safetensors --qkv-prefix=layer3. --spec="key=q2:channel:g32,value=q2:token:g32,residual=128" --gpu-emulator --key-reads=parts --value-reads=f16 | FileCheck %s --check-prefix=KIVI2
// KIVI2: kvc-run: 1024 steps, batch 1, 8 query / 2 KV heads, head_dim 64, key quant<bits=2, axis=channel, group=32>, value quant<bits=2, axis=token, group=32>, residual 128, tokens recorded 'layer3.q', 'layer3.k', 'layer3.v' of qkv_layers.safetensors (1024 tokens)
// KIVI2-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// KIVI2-NEXT: generated append: pages and residual rows equal the runtime's append after every step
// KIVI2-NEXT: PASS

// The same on CUDA cores (no tensor-core passes), the first layer.
// RUN: kvc-run %s --steps=512 --qkv=%shared_models/tiny-lm/qkv_layers.safetensors --qkv-prefix=layer0. --spec="key=q2:channel:g32,value=q2:token:g32,residual=128" --gpu-emulator | FileCheck %s --check-prefix=CORES
// CORES: tokens recorded 'layer0.q'
// CORES: PASS

// K4/V4 with whole-head value groups (g64 at head_dim 64: the value pass
// folds the scales into the weights), the last layer.
// RUN: kvc-run %s --steps=512 --qkv=%shared_models/tiny-lm/qkv_layers.safetensors --qkv-prefix=layer5. --spec="key=q4:channel:g64,value=q4:token:g64,residual=128" --gpu-emulator --key-reads=parts --value-reads=f16 | FileCheck %s --check-prefix=K4V4
// K4V4: key quant<bits=4, axis=channel, group=64>, value quant<bits=4, axis=token, group=64>, residual 128, tokens recorded 'layer5.q'
// K4V4: PASS

// Token-axis keys (no folded key scales), K8/V8 and fp8.
// RUN: kvc-run %s --steps=512 --qkv=%shared_models/tiny-lm/qkv_layers.safetensors --qkv-prefix=layer1. --spec="key=q2:token:g32,value=q2:token:g32,residual=128" --gpu-emulator --key-reads=parts --value-reads=f16 | FileCheck %s --check-prefix=TOKEN
// TOKEN: PASS
// RUN: kvc-run %s --steps=512 --qkv=%shared_models/tiny-lm/qkv_layers.safetensors --qkv-prefix=layer4. --spec="key=q8:channel:g32,value=q8:token:g64,residual=64" --gpu-emulator --key-reads=parts --value-reads=f16 | FileCheck %s --check-prefix=K8V8
// K8V8: PASS
// RUN: kvc-run %s --steps=512 --qkv=%shared_models/tiny-lm/qkv_layers.safetensors --qkv-prefix=layer2. --spec="key=fp8:e4m3,value=fp8:e4m3,residual=128" --gpu-emulator --key-reads=parts --value-reads=f16 | FileCheck %s --check-prefix=FP8
// FP8: PASS

// Tensor cores that flush fp16 subnormal inputs (the emulator's model): the
// default reads miss by errors of order 1 on real data too, and
// mma-codes=normal passes.
// RUN: env KVC_GPU_EMULATOR_MMA_SUBNORMALS=flush not kvc-run %s --steps=256 --qkv=%shared_models/tiny-lm/qkv_layers.safetensors --qkv-prefix=layer2. --spec="key=q4:channel:g32,value=q4:token:g64,residual=128" --gpu-emulator --key-reads=parts --value-reads=f16 2>&1 | FileCheck %s --check-prefix=FLUSHED
// FLUSHED-DAG: max |compiled - oracle| / max |oracle| = {{[0-9.]+e(-01|\+00|\+01)}}
// FLUSHED-DAG: error: the compiled step is further from the oracle than the tolerance
// RUN: env KVC_GPU_EMULATOR_MMA_SUBNORMALS=flush kvc-run %s --steps=512 --qkv=%shared_models/tiny-lm/qkv_layers.safetensors --qkv-prefix=layer2. --spec="key=q4:channel:g32,value=q4:token:g64,residual=128" --gpu-emulator --key-reads=parts --value-reads=f16 --gpu-options="mma-codes=normal" | FileCheck %s --check-prefix=NORMAL
// NORMAL: PASS

func.func @step(%cache: !kvc.cache<1x2x?x64xf32>, %q: tensor<1x8x1x64xf32>,
                %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x1x64xf32>) -> (tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x64xf32>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf32> -> tensor<1x8x1x64xf32>
  return %o, %c : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf32>
}
