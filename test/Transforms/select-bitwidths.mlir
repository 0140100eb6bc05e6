// RUN: %python %S/Inputs/select-bitwidths-stats.py %t.stats.safetensors
// RUN: %python %S/Inputs/select-bitwidths-stats.py %t.calib.safetensors --calibrated
// RUN: kvc-opt %s --kvc-select-bitwidths="budget=3" 2>%t.analytic.txt | FileCheck %s --check-prefix=ANALYTIC
// RUN: FileCheck %s --check-prefix=ANALYTIC-REPORT < %t.analytic.txt
// RUN: kvc-opt %s --kvc-select-bitwidths="budget=4 stats=%t.stats.safetensors threads=2" -o /dev/null 2>&1 | FileCheck %s --check-prefix=MEASURED
// RUN: kvc-opt %s --kvc-select-bitwidths="budget=4 stats=%t.calib.safetensors report=json report-file=%t.json" -o /dev/null
// RUN: FileCheck %s --check-prefix=JSON < %t.json
// RUN: kvc-opt %s --kvc-select-bitwidths="budget=3.5 stats=%t.stats.safetensors granularity=head report=none" | FileCheck %s --check-prefix=HEAD
// RUN: kvc-opt %s --kvc-select-bitwidths="budget=3.5 stats=%t.stats.safetensors prune residual=64" -o /dev/null 2>&1 | FileCheck %s --check-prefix=PRUNE
// RUN: kvc-opt %s --kvc-compress="budget=3 stats=%t.stats.safetensors" -o - 2>%t.pipeline.txt | FileCheck %s --check-prefix=PIPELINE
// RUN: FileCheck %s --check-prefix=PIPELINE-REPORT < %t.pipeline.txt

// Two layers of 2 KV heads (head_dim 32); the statistics file (made by
// Inputs/select-bitwidths-stats.py) has 4 query heads, 384 tokens, positions
// >= 128 scored, and larger key outliers in layer 1.

// Without statistics the analytic proxy decides: per-channel keys.
// ANALYTIC: #kvc_encoding = #kvc.encoding<key = #kvc.quant<bits = {{[0-9]}}, axis = channel, group = {{[0-9]+}}>, value = #kvc.quant<{{.*}}>, residual = 128>
// ANALYTIC-LABEL: func.func @two_layers
// ANALYTIC-SAME: !kvc.cache<1x2x?x32xf16, #kvc_encoding{{[0-9]*}}> {kvc.layer = 0 : i64}
// ANALYTIC: kvc.append {{.*}} : !kvc.cache<1x2x?x32xf16, #kvc_encoding
// ANALYTIC: return

// ANALYTIC-REPORT: kvc-select-bitwidths: budget 3.000 bits/element, granularity layer, 4 slots
// ANALYTIC-REPORT-NEXT: cost model: analytic (no statistics: analytic proxy from bits, group and axis)
// ANALYTIC-REPORT-NEXT: layer  head  side   encoding                 bits   B/token      error E   pred. loss
// ANALYTIC-REPORT-NEXT: {{^ +}}0   all  key    q{{[2-8]}}:channel:g{{[0-9]+}}
// ANALYTIC-REPORT-NEXT: {{^ +}}0   all  value
// ANALYTIC-REPORT-NEXT: {{^ +}}1   all  key    q{{[2-8]}}:channel:g{{[0-9]+}}
// ANALYTIC-REPORT-NEXT: {{^ +}}1   all  value
// The budget is met exactly: 3 bits/element = 384 of 1024 fp16 bytes/token.
// ANALYTIC-REPORT-NEXT: total: 3.000 bits/element (budget 3.000), 96.0 B/token vs fp16 512.0 (5.33x smaller)
// ANALYTIC-REPORT-NEXT: predicted loss: {{.*}} (lower bound {{.*}}; solver dp, optimal)

// Measured attention errors, uncalibrated: layer 1's keys (larger outliers)
// get at least as many bits as layer 0's.
// MEASURED: cost model: attention-error (no kvc.calib.layer0.key.encoding/dloss in {{.*}}stats.safetensors: predicted loss is the attention error E, not calibrated)
// MEASURED: 0   all  key    [[K0:q[2-8]]]:channel
// MEASURED: 1   all  key    {{q[4-8]|fp16|fp8}}
// MEASURED: total: {{[0-3]\.[0-9]+|4\.000}} bits/element (budget 4.000)
// 15 candidates per side and KV head: (15 + 15) x 2 heads x 2 layers.
// MEASURED: errors: 120 candidate evaluations (per KV head) in {{.*}} s on 2 threads

// JSON: "alphas": [
// JSON-NEXT: {
// JSON-NEXT: "alpha": {{[0-9.e-]+}},
// JSON-NEXT: "dloss": 0.02,
// JSON-NEXT: "layer": 0,
// JSON-NEXT: "reference": "q2:channel:g32",
// JSON-NEXT: "reference_error": {{[0-9.e-]+}},
// JSON-NEXT: "side": "key"
// JSON: "budget": 4,
// JSON: "granularity": "layer",
// JSON: "model": "calibrated",
// JSON: "optimal": true,
// JSON: "slots": [
// JSON-NEXT: {
// JSON-NEXT: "bits_per_element": {{[0-9.]+}},
// JSON-NEXT: "bytes_per_token": {{[0-9.]+}},
// JSON-NEXT: "encoding": "{{q[2-8]:channel:g[0-9]+|fp16|fp8:e[45]m[23]}}",
// JSON-NEXT: "error": {{[0-9.e-]+}},
// JSON-NEXT: "head": "all",
// JSON-NEXT: "layer": 0,
// JSON-NEXT: "predicted_loss": {{[0-9.e-]+}},
// JSON-NEXT: "side": "key"
// JSON: "solver": "dp",

// Per-head choices go into kvc.head_encodings (one #kvc.encoding per KV
// head); the type carries the widest choice per side.
// HEAD-LABEL: func.func @two_layers
// HEAD-SAME: {kvc.head_encodings = [#kvc_encoding{{[0-9]*}}, #kvc_encoding{{[0-9]*}}], kvc.layer = 0 : i64}
// HEAD-SAME: {kvc.head_encodings = [#kvc_encoding{{[0-9]*}}, #kvc_encoding{{[0-9]*}}], kvc.layer = 1 : i64}

// Pruning candidates (keys only) are measured too; R = 64 from the option.
// Per KV head: 15 plain candidates per side (channel groups 32/64, token
// group 32, 4 bit widths, fp16, 2 fp8; no group 128 in 64-token pages)
// plus 2 x 5 pruned keys: (25 + 15) x
// 2 heads x 2 layers = 160.
// PRUNE-NOT: value  prune
// PRUNE: errors: 160 candidate evaluations

// kvc-compress with a budget: decouple-compression's spec, then the cost
// model, then the cache report.
// PIPELINE: #kvc_encoding = #kvc.encoding<key = #kvc.quant<bits = {{[0-9]}}, axis = channel
// PIPELINE-LABEL: func.func @two_layers
// PIPELINE-REPORT: kvc-select-bitwidths: budget 3.000 bits/element, granularity layer, 4 slots
// PIPELINE-REPORT: total: {{[0-2]\.[0-9]+|3\.000}} bits/element (budget 3.000)
// PIPELINE-REPORT: kvc cache report: 2 layers

func.func @two_layers(%c0: !kvc.cache<1x2x?x32xf16> {kvc.layer = 0 : i64},
                      %c1: !kvc.cache<1x2x?x32xf16> {kvc.layer = 1 : i64},
                      %q: tensor<1x4x1x32xf32>, %k: tensor<1x2x1x32xf32>)
    -> (tensor<1x4x1x32xf32>, !kvc.cache<1x2x?x32xf16>, !kvc.cache<1x2x?x32xf16>) {
  %a0 = kvc.append %c0, %k, %k : !kvc.cache<1x2x?x32xf16>, tensor<1x2x1x32xf32>, tensor<1x2x1x32xf32>
  %o0 = kvc.attend %q, %a0 {causal} : tensor<1x4x1x32xf32>, !kvc.cache<1x2x?x32xf16> -> tensor<1x4x1x32xf32>
  %a1 = kvc.append %c1, %k, %k : !kvc.cache<1x2x?x32xf16>, tensor<1x2x1x32xf32>, tensor<1x2x1x32xf32>
  %o1 = kvc.attend %o0, %a1 {causal} : tensor<1x4x1x32xf32>, !kvc.cache<1x2x?x32xf16> -> tensor<1x4x1x32xf32>
  return %o1, %a0, %a1 : tensor<1x4x1x32xf32>, !kvc.cache<1x2x?x32xf16>, !kvc.cache<1x2x?x32xf16>
}
