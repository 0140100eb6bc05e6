// RUN: %python %S/Inputs/select-bitwidths-stats.py %t.stats.safetensors
// RUN: not kvc-opt %s --kvc-select-bitwidths="budget=1.5 stats=%t.stats.safetensors residual=64 context=1024 threads=2 report=none" 2>&1 | FileCheck %s --check-prefix=NOSCORES

// A streaming eviction has no scores, so it cannot apply an H2O budget.
// NOSCORES: error: 'kvc.evict' op kvc-select-bitwidths: the cost model chose an H2O token budget for this cache, but this eviction has no scores to rank tokens by
#stream = #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 64,
                        evict = #kvc.evict<policy = streaming, sink = 4, window = 60, budget = 64>>
func.func @streaming(%c0: !kvc.cache<1x2x?x32xf16, #stream> {kvc.layer = 0 : i64},
                     %c1: !kvc.cache<1x2x?x32xf16> {kvc.layer = 1 : i64},
                     %q: tensor<1x4x1x32xf32>, %k: tensor<1x2x1x32xf32>)
    -> (tensor<1x4x1x32xf32>, !kvc.cache<1x2x?x32xf16, #stream>, !kvc.cache<1x2x?x32xf16>) {
  %a0 = kvc.append %c0, %k, %k : !kvc.cache<1x2x?x32xf16, #stream>, tensor<1x2x1x32xf32>, tensor<1x2x1x32xf32>
  %o0 = kvc.attend %q, %a0 {causal} : tensor<1x4x1x32xf32>, !kvc.cache<1x2x?x32xf16, #stream> -> tensor<1x4x1x32xf32>
  %e0 = kvc.evict %a0 with <policy = streaming, sink = 4, window = 60, budget = 64> : !kvc.cache<1x2x?x32xf16, #stream>
  %a1 = kvc.append %c1, %k, %k : !kvc.cache<1x2x?x32xf16>, tensor<1x2x1x32xf32>, tensor<1x2x1x32xf32>
  %o1 = kvc.attend %o0, %a1 {causal} : tensor<1x4x1x32xf32>, !kvc.cache<1x2x?x32xf16> -> tensor<1x4x1x32xf32>
  return %o1, %e0, %a1 : tensor<1x4x1x32xf32>, !kvc.cache<1x2x?x32xf16, #stream>, !kvc.cache<1x2x?x32xf16>
}
