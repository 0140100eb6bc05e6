// RUN: %python %S/Inputs/select-bitwidths-stats.py %t.stats.safetensors
// RUN: kvc-opt %s --kvc-select-bitwidths="budget=1.5 stats=%t.stats.safetensors residual=64 context=1024 threads=2 report=none" 2>&1 | FileCheck %s --check-prefix=BUDGET
// RUN: kvc-opt %s --kvc-select-bitwidths="budget=4 stats=%t.stats.safetensors residual=64 context=1024 evict-fractions=1 threads=2 report=none" 2>&1 | FileCheck %s --check-prefix=KEEP

// The cost model's token budgets reach the kvc.evict ops: an eviction on a
// cache whose layer now keeps 1/4 or 1/2 of the context applies that policy
// (two-tier demotion kept), and one on a layer that keeps every token goes
// away. Same two layers and statistics as select-bitwidths-evict.mlir.

// BUDGET-LABEL: func.func @evict_ops
// BUDGET: %[[O0:.*]], %[[M0:.*]] = kvc.attend
// BUDGET: kvc.evict %{{.*}} scores(%[[M0]] : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 64, budget = {{256|512}}, demote_key = #kvc.quant<bits = 2, axis = token, group = 32>, demote_value = #kvc.quant<bits = 2, axis = token, group = 32>> : !kvc.cache<1x2x?x32xf16, #kvc_encoding
// BUDGET: kvc.evict %{{.*}} scores(%{{.*}} : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 64, budget = {{256|512}}> : !kvc.cache<1x2x?x32xf16, #kvc_encoding

// KEEP-LABEL: func.func @evict_ops
// KEEP-NOT: kvc.evict
// KEEP: return

#two_tier = #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 64,
                          evict = #kvc.evict<policy = h2o, sink = 4, window = 64, budget = 1000,
                                             demote_key = #kvc.quant<bits = 2, axis = token, group = 32>,
                                             demote_value = #kvc.quant<bits = 2, axis = token, group = 32>>>
#drop = #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 64,
                      evict = #kvc.evict<policy = h2o, sink = 4, window = 64, budget = 1000>>
func.func @evict_ops(%c0: !kvc.cache<1x2x?x32xf16, #two_tier> {kvc.layer = 0 : i64},
                     %c1: !kvc.cache<1x2x?x32xf16, #drop> {kvc.layer = 1 : i64},
                     %q: tensor<1x4x1x32xf32>, %k: tensor<1x2x1x32xf32>)
    -> (tensor<1x4x1x32xf32>, !kvc.cache<1x2x?x32xf16, #two_tier>, !kvc.cache<1x2x?x32xf16, #drop>) {
  %a0 = kvc.append %c0, %k, %k : !kvc.cache<1x2x?x32xf16, #two_tier>, tensor<1x2x1x32xf32>, tensor<1x2x1x32xf32>
  %o0, %m0 = kvc.attend %q, %a0 {causal} : tensor<1x4x1x32xf32>, !kvc.cache<1x2x?x32xf16, #two_tier> -> tensor<1x4x1x32xf32>, tensor<1x2x?xf32>
  %e0 = kvc.evict %a0 scores(%m0 : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 64, budget = 1000, demote_key = #kvc.quant<bits = 2, axis = token, group = 32>, demote_value = #kvc.quant<bits = 2, axis = token, group = 32>> : !kvc.cache<1x2x?x32xf16, #two_tier>
  %a1 = kvc.append %c1, %k, %k : !kvc.cache<1x2x?x32xf16, #drop>, tensor<1x2x1x32xf32>, tensor<1x2x1x32xf32>
  %o1, %m1 = kvc.attend %o0, %a1 {causal} : tensor<1x4x1x32xf32>, !kvc.cache<1x2x?x32xf16, #drop> -> tensor<1x4x1x32xf32>, tensor<1x2x?xf32>
  %e1 = kvc.evict %a1 scores(%m1 : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 64, budget = 1000> : !kvc.cache<1x2x?x32xf16, #drop>
  return %o1, %e0, %e1 : tensor<1x4x1x32xf32>, !kvc.cache<1x2x?x32xf16, #two_tier>, !kvc.cache<1x2x?x32xf16, #drop>
}
