// RUN: %python %S/Inputs/select-bitwidths-stats.py %t.stats.safetensors
// RUN: kvc-opt %s --kvc-select-bitwidths="budget=1.5 stats=%t.stats.safetensors residual=64 context=1024 threads=2" 2>%t.report.txt | FileCheck %s --check-prefix=EVICT
// RUN: FileCheck %s --check-prefix=REPORT < %t.report.txt
// RUN: kvc-opt %s --kvc-select-bitwidths="budget=1.5 stats=%t.stats.safetensors residual=64 context=1024 evict-fractions=1,0.5 report=json report-file=%t.json granularity=head threads=2" | FileCheck %s --check-prefix=HEAD
// RUN: FileCheck %s --check-prefix=JSON < %t.json
// RUN: kvc-opt %s --kvc-select-bitwidths="budget=2.5 stats=%t.stats.safetensors residual=64 context=1024 evict-fractions=1,0.5 granularity=head threads=2" 2>%t.heads.txt | FileCheck %s --check-prefix=HEADS
// RUN: FileCheck %s --check-prefix=HEADS-REPORT < %t.heads.txt
// RUN: kvc-opt %s --kvc-select-bitwidths="budget=2.5 stats=%t.stats.safetensors residual=64 context=1024 evict-fractions=1,0.5 granularity=head threads=2 report=json report-file=%t.heads.json" | kvc-opt | FileCheck %s --check-prefix=HEADS
// RUN: FileCheck %s --check-prefix=HEADS-JSON < %t.heads.json
// RUN: kvc-opt %s --kvc-select-bitwidths="budget=4 stats=%t.stats.safetensors residual=64 context=1024 evict-fractions=1 threads=2" 2>&1 | FileCheck %s --check-prefix=KEEP
// RUN: kvc-opt %s --kvc-compress="budget=1.5 stats=%t.stats.safetensors context=1024 evict-fractions=1,0.5 report=none" 2>/dev/null | FileCheck %s --check-prefix=PIPELINE
// RUN: not kvc-opt %s --kvc-select-bitwidths="budget=3 stats=%t.stats.safetensors context=-5" 2>&1 | FileCheck %s --check-prefix=NEGATIVE
// RUN: not kvc-opt %s --kvc-select-bitwidths="budget=3 context=1024" 2>&1 | FileCheck %s --check-prefix=NOSTATS
// RUN: not kvc-opt %s --kvc-select-bitwidths="budget=3 stats=%t.stats.safetensors context=1024 evict-fractions=0.5,1.5" 2>&1 | FileCheck %s --check-prefix=RANGE
// RUN: not kvc-opt %s --kvc-select-bitwidths="budget=3 stats=%t.stats.safetensors context=1024 evict-fractions=0.5,0.5" 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: not kvc-opt %s --kvc-select-bitwidths="budget=3 stats=%t.stats.safetensors evict-fractions=0.5" 2>&1 | FileCheck %s --check-prefix=NOCONTEXT
// RUN: not kvc-opt %s --kvc-select-bitwidths="budget=3 stats=%t.stats.safetensors residual=64 context=1024 evict-fractions=0.05" 2>&1 | FileCheck %s --check-prefix=TOOSMALL

// Token budgets (docs/cost-model.md): two layers of 2 KV heads (head_dim
// 32); the statistics have 384 calibration tokens, positions >= 128 scored.
// At 1.5 bits per element nothing fits without eviction (the cheapest
// encoding, q2 in groups of 64, is 2.5 bits), so every layer keeps at most
// 3/4 of a 1024-token context; H2O with 4 sink tokens and a window of R = 64.

// EVICT: #kvc_encoding = #kvc.encoding<key = #kvc.quant<{{.*}}>, value = #kvc.quant<{{.*}}>, residual = 64, evict = #kvc.evict<policy = h2o, sink = 4, window = 64, budget = {{256|512}}>>
// EVICT-LABEL: func.func @two_layers
// EVICT-SAME: !kvc.cache<1x2x?x32xf16, #kvc_encoding{{[0-9]*}}> {kvc.layer = 0 : i64}
// EVICT: kvc.append {{.*}} : !kvc.cache<1x2x?x32xf16, #kvc_encoding

// REPORT: layer  head  side   encoding                 bits   B/token      error E   pred. loss   keep  evict
// REPORT-NEXT: {{^ +}}0   all  key    q{{[2-8]}}:{{.*}}  {{0\.250|0\.500}}  h2o:sink=4:window=64:budget={{256|512}}
// REPORT-NEXT: {{^ +}}0   all  value  {{.*}}  {{0\.250|0\.500}}  h2o:sink=4:window=64:budget={{256|512}}
// REPORT-NEXT: {{^ +}}1   all  key
// REPORT-NEXT: {{^ +}}1   all  value
// REPORT-NEXT: token budgets: context 1024 tokens, fractions 1 0.75 0.5 0.25 (H2O, sink 4, window R)
// The 0.25 budget is measured with 96 of the 384 calibration tokens.
// REPORT-NEXT: evict layer 0: h2o:sink=4:window=64:budget=[[B0:256|512]] (keep {{0\.250|0\.500}}; measured with budget {{96|192}} on the calibration tokens: E {{.*}}, pred. loss
// REPORT-NEXT: evict layer 1: h2o:sink=4:window=64:budget={{256|512}}
// REPORT-NEXT: total: {{1\.[0-4][0-9]*|1\.500}} bits/element (budget 1.500), {{.*}} B/token vs fp16 512.0 ({{.*}}x smaller), averaged over the context
// REPORT-NEXT: predicted loss: {{.*}}; solver dp, optimal)
// 15 candidates per side, 2 heads, 2 layers: 120 unevicted, and 120 per
// token budget (3 of them).
// REPORT-NEXT: errors: 480 candidate evaluations

// Per-head encodings: every KV head chooses its own token budget; at 1.5
// bits both heads of each layer keep half the context, so the layer's
// policy has one budget. It is on the type's encoding, not on the heads'
// entries.
// HEAD: #[[TYPE:kvc_encoding[0-9]*]] = #kvc.encoding<{{.*}}, evict = #kvc.evict<policy = h2o, sink = 4, window = 64, budget = 512>>
// HEAD-LABEL: func.func @two_layers
// HEAD-SAME: !kvc.cache<1x2x?x32xf16, #[[TYPE]]> {kvc.head_encodings = [#kvc.encoding<key = {{[^]]*}}, residual = 64>, #kvc.encoding<key = {{[^]]*}}, residual = 64>], kvc.layer = 0 : i64}

// JSON: "context": 1024,
// JSON: "evict_fractions": [
// JSON-NEXT: 1,
// JSON-NEXT: 0.5
// JSON-NEXT: ],
// JSON: "evictions": [
// JSON-NEXT: {
// JSON-NEXT: "calibration_budget": 192,
// JSON-NEXT: "error": {{[0-9.e-]+}},
// JSON-NEXT: "evict": "h2o:sink=4:window=64:budget=512",
// JSON-NEXT: "keep_fraction": 0.5,
// JSON-NEXT: "layer": 0,
// JSON: "slots": [
// JSON-NEXT: {
// JSON-NEXT: "bits_per_element": {{[0-9.]+}},
// JSON-NEXT: "bytes_per_token": {{[0-9.]+}},
// JSON-NEXT: "encoding": "{{.*}}",
// JSON-NEXT: "error": {{[0-9.e-]+}},
// JSON-NEXT: "evict": "h2o:sink=4:window=64:budget=512",
// JSON-NEXT: "head": 0,
// JSON-NEXT: "keep_fraction": 0.5,

// At 2.5 bits the heads of layer 0 differ: head 0 keeps half the context,
// head 1 every token (budget = context), at fewer bits; layer 1's heads
// agree. The per-head budgets are the type's #kvc.evict head_budgets (the
// IR parses back: the second HEADS run reads its own output), budget =
// their maximum; the heads' entries carry no evict.
// HEADS: #[[L0:kvc_encoding[0-9]*]] = #kvc.encoding<{{.*}}, residual = 64, evict = #kvc.evict<policy = h2o, sink = 4, window = 64, budget = 1024, head_budgets = [512, 1024]>>
// HEADS: #[[L1:kvc_encoding[0-9]*]] = #kvc.encoding<{{.*}}, residual = 64, evict = #kvc.evict<policy = h2o, sink = 4, window = 64, budget = 512>>
// HEADS-LABEL: func.func @two_layers
// HEADS-SAME: !kvc.cache<1x2x?x32xf16, #[[L0]]> {kvc.head_encodings = [#kvc.encoding<key = {{[^]]*}}, residual = 64>, #kvc.encoding<key = {{[^]]*}}, residual = 64>], kvc.layer = 0 : i64}
// HEADS-SAME: !kvc.cache<1x2x?x32xf16, #[[L1]]> {kvc.head_encodings =

// Each row shows its head's budget and share of the context.
// HEADS-REPORT: layer  head  side   encoding                 bits   B/token      error E   pred. loss   keep  evict
// HEADS-REPORT-NEXT: {{^ +}}0     0  key    {{.*}}  0.500  h2o:sink=4:window=64:budget=512{{$}}
// HEADS-REPORT-NEXT: {{^ +}}0     1  key    {{.*}}  1.000  h2o:sink=4:window=64:budget=1024{{$}}
// HEADS-REPORT-NEXT: {{^ +}}0     0  value  {{.*}}  0.500  h2o:sink=4:window=64:budget=512{{$}}
// HEADS-REPORT-NEXT: {{^ +}}0     1  value  {{.*}}  1.000  h2o:sink=4:window=64:budget=1024{{$}}
// HEADS-REPORT: token budgets: context 1024 tokens, fractions 1 0.5 (H2O, sink 4, window R, per KV head)
// HEADS-REPORT-NEXT: evict layer 0: h2o:sink=4:window=64:budget=1024:heads=512,1024 (keep 0.750; measured with budgets 192,384 on the calibration tokens: E
// HEADS-REPORT-NEXT: evict layer 1: h2o:sink=4:window=64:budget=512 (keep 0.500; measured with budget 192 on the calibration tokens: E
// HEADS-REPORT: total: {{2\.[0-4][0-9]*|2\.500}} bits/element (budget 2.500)

// HEADS-JSON: "evictions": [
// HEADS-JSON-NEXT: {
// HEADS-JSON-NEXT: "calibration_budget": 384,
// HEADS-JSON-NEXT: "calibration_head_budgets": [
// HEADS-JSON-NEXT: 192,
// HEADS-JSON-NEXT: 384
// HEADS-JSON-NEXT: ],
// HEADS-JSON-NEXT: "error": {{[0-9.e-]+}},
// HEADS-JSON-NEXT: "evict": "h2o:sink=4:window=64:budget=1024:heads=512,1024",
// HEADS-JSON-NEXT: "head_budgets": [
// HEADS-JSON-NEXT: 512,
// HEADS-JSON-NEXT: 1024
// HEADS-JSON-NEXT: ],
// HEADS-JSON-NEXT: "keep_fraction": 0.75,
// HEADS-JSON-NEXT: "layer": 0,
// HEADS-JSON: "slots": [
// HEADS-JSON-NEXT: {
// HEADS-JSON: "evict": "h2o:sink=4:window=64:budget=1024:heads=512,1024",
// HEADS-JSON-NEXT: "head": 0,
// HEADS-JSON-NEXT: "keep_fraction": 0.5,
// HEADS-JSON: "token_budget": 512
// HEADS-JSON: "evict": "h2o:sink=4:window=64:budget=1024:heads=512,1024",
// HEADS-JSON-NEXT: "head": 1,
// HEADS-JSON-NEXT: "keep_fraction": 1,
// HEADS-JSON: "token_budget": 1024

// kvc-compress passes context and evict-fractions to the cost model (its
// spec's residual window R = 128 is the H2O window).
// PIPELINE: #kvc_encoding = #kvc.encoding<{{.*}}, residual = 128, evict = #kvc.evict<policy = h2o, sink = 4, window = 128, budget = 512>>
// PIPELINE-LABEL: func.func @two_layers

// Keeping every token: no evict parameter, the same choice as without
// token budgets.
// KEEP-NOT: evict =
// KEEP: evict layer 0: none (keep 1.000)
// KEEP: evict layer 1: none (keep 1.000)

// NEGATIVE: error: kvc-select-bitwidths: option 'context' (tokens the token budgets are planned for) must be >= 0, got -5
// NOSTATS: error: kvc-select-bitwidths: 'context' needs 'stats': eviction has no analytic proxy
// RANGE: error: kvc-select-bitwidths: evict fraction 1.5 is not in (0, 1] (the share of the context's tokens kept)
// TWICE: error: kvc-select-bitwidths: evict fraction 0.5 is listed twice
// NOCONTEXT: error: kvc-select-bitwidths: 'evict-fractions' needs 'context' (the context length the token budgets are fractions of)
// TOOSMALL: error: kvc-select-bitwidths: layer 0: none of the token budgets is possible (token budget 0.05 x 1024 = 51: eviction sink (4) + window (64) must not exceed the budget (51))

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
