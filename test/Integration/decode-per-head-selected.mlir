// REQUIRES: shared-models
// RUN: kvc-opt %s --kvc-select-bitwidths="budget=3 granularity=head report=none stats=%shared_models/tiny-lm/qkv_layers.safetensors" -o %t.mlir
// RUN: kvc-run %t.mlir --steps=300 | FileCheck %s

// The cost model's per-head choice runs: on the tiny LM's layer 3 Q/K/V at
// 3 bits/element, kvc-select-bitwidths granularity=head gives the two KV
// heads different encodings; the compiled decode step reads each head with
// its own and matches the oracle, which applies each head's encoding
// (decode-per-head.mlir covers hand-written per-head encodings). kvc-run
// lists the heads only when some head's encoding differs from the type's,
// which carries the widest choice of each side: with two heads, that means
// the heads differ.

// CHECK: kvc-run: 300 steps, batch 1, 8 query / 2 KV heads, head_dim 64
// CHECK-NEXT: kvc-run: KV head 0: key quant<{{.*}}>, value quant<{{.*}}>
// CHECK-NEXT: kvc-run: KV head 1: key quant<{{.*}}>, value quant<{{.*}}>
// CHECK-NEXT: max |compiled - oracle| / max |oracle| = {{.*}} (tolerance 1.00e-04)
// CHECK-NEXT: PASS

func.func @step(%cache: !kvc.cache<1x2x?x64xf32> {kvc.layer = 3 : i64},
                %q: tensor<1x8x1x64xf32>, %k: tensor<1x2x1x64xf32>,
                %v: tensor<1x2x1x64xf32>)
    -> (tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x64xf32>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf32> -> tensor<1x8x1x64xf32>
  return %o, %c : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf32>
}
