// RUN: %python %S/Inputs/select-bitwidths-stats.py %t.stats.safetensors
// RUN: echo "not a safetensors file" > %t.junk.safetensors
// RUN: not kvc-opt %s -split-input-file --kvc-select-bitwidths 2>&1 | FileCheck %s --check-prefix=NOBUDGET
// RUN: not kvc-opt %s -split-input-file --kvc-select-bitwidths="budget=3 granularity=token" 2>&1 | FileCheck %s --check-prefix=GRANULARITY
// RUN: not kvc-opt %s -split-input-file --kvc-select-bitwidths="budget=3 report=yaml" 2>&1 | FileCheck %s --check-prefix=REPORT
// RUN: not kvc-opt %s -split-input-file --kvc-select-bitwidths="budget=3 prune" 2>&1 | FileCheck %s --check-prefix=PRUNE
// RUN: not kvc-opt %s -split-input-file --kvc-select-bitwidths="budget=2" 2>&1 | FileCheck %s --check-prefix=INFEASIBLE
// RUN: not kvc-opt %s -split-input-file --kvc-select-bitwidths="budget=3 stats=%t.missing.safetensors" 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not kvc-opt %s -split-input-file --kvc-select-bitwidths="budget=3 stats=%t.junk.safetensors" 2>&1 | FileCheck %s --check-prefix=JUNK
// RUN: not kvc-opt %s -split-input-file --kvc-select-bitwidths="budget=3 stats=%t.stats.safetensors" 2>&1 | FileCheck %s --check-prefix=STATS

// Bad options name the option; bad statistics name the file and the
// problem; a cache the statistics cannot describe is reported at the cache.

// NOBUDGET: error: kvc-select-bitwidths: option 'budget' (average bits per element) must be > 0
// GRANULARITY: error: kvc-select-bitwidths: bad granularity 'token' (expected layer or head)
// REPORT: error: kvc-select-bitwidths: bad report 'yaml' (expected text, json or none)
// PRUNE: error: kvc-select-bitwidths: 'prune' needs 'stats': pruning has no analytic proxy
// The cheapest candidate at head_dim 32 is q2 with groups of 64 (2.5 bits):
// INFEASIBLE: error: kvc-select-bitwidths: budget 2 bits/element is infeasible: the cheapest candidates average 2.5000 bits/element
// MISSING: error: kvc-select-bitwidths: {{.*}}missing.safetensors: {{.*}}
// JUNK: error: kvc-select-bitwidths: {{.*}}junk.safetensors: {{.*}}

// The statistics have layers 0 and 1 with 2 KV heads of head_dim 32.
// STATS: select-bitwidths-errors.mlir:[[@LINE+1]]:{{[0-9]+}}: error: kvc-select-bitwidths: layer 0 has head_dim 64 but its statistics in {{.*}}stats.safetensors have head_dim 32
func.func @head_dim(%c0: !kvc.cache<1x2x?x64xf16> {kvc.layer = 0 : i64}) -> !kvc.cache<1x2x?x64xf16> {
  return %c0 : !kvc.cache<1x2x?x64xf16>
}

// -----
// STATS: select-bitwidths-errors.mlir:[[@LINE+1]]:{{[0-9]+}}: error: kvc-select-bitwidths: layer 1 has 4 KV heads but its statistics in {{.*}}stats.safetensors have 2
func.func @kv_heads(%c1: !kvc.cache<1x4x?x32xf16> {kvc.layer = 1 : i64}) -> !kvc.cache<1x4x?x32xf16> {
  return %c1 : !kvc.cache<1x4x?x32xf16>
}

// -----
// STATS: select-bitwidths-errors.mlir:[[@LINE+1]]:{{[0-9]+}}: error: kvc-select-bitwidths: layer 7 has no statistics in {{.*}}stats.safetensors (expected tensors layer7.q/k/v)
func.func @missing_layer(%c7: !kvc.cache<1x2x?x32xf16> {kvc.layer = 7 : i64}) -> !kvc.cache<1x2x?x32xf16> {
  return %c7 : !kvc.cache<1x2x?x32xf16>
}

// -----
// STATS: error: kvc-select-bitwidths: the module has no caches (run kvc-raise-attention first)
func.func @no_caches(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
