// RUN: kvc-opt %s --kvc-cache-report -o /dev/null 2>&1 | FileCheck %s --check-prefix=TEXT
// RUN: kvc-opt %s --kvc-cache-report="format=json batch=4 context=1000" -o /dev/null 2>&1 | FileCheck %s --check-prefix=JSON
// RUN: kvc-opt %s --kvc-cache-report="output=%t.json format=json" -o /dev/null && FileCheck %s --check-prefix=FILE < %t.json
// RUN: not kvc-opt %s --kvc-cache-report="format=yaml" -o /dev/null 2>&1 | FileCheck %s --check-prefix=BADFORMAT
// RUN: not kvc-opt %s --kvc-cache-report="page-tokens=48" -o /dev/null 2>&1 | FileCheck %s --check-prefix=BADPAGE
// RUN: kvc-opt %s --kvc-cache-report -o - 2>/dev/null | FileCheck %s --check-prefix=IR

// Two layers of a GQA model (8 KV heads, head_dim 128): KIVI-2 in layer 0,
// 4-bit keys / fp8 values in layer 1; one fp16 layer.
//
// Bytes per token per KV head (docs/layout.md, 64-token pages):
//   q2, g32: 128*2/8 = 32 code bytes + 128/32 groups * 4 param bytes = 48
//   q4:channel:g64: 64 code bytes + 4 param bytes per 64-token group * 128
//     channels / 64 tokens = 8 -> 72
//   fp8: 128 + one fp16 scale = 130 -> the block rounds to 16 bytes:
//     64 * 128 + 64 * 2 = 8320 bytes / 64 = 130
//   fp16: 256
// times 8 heads: 384, 576, 1040, 2048.
//
// At 4096 tokens per sequence (the default context), per layer and side:
// 4096/64 = 64 pages per head plus a 128x128 fp16 staging buffer (32768 B):
//   layer 0: K = V = 8 * (64 * 3072 + 32768) = 1835008
//   layer 1: K = 8 * (64 * 4608 + 32768) = 2621440,
//            V = 8 * (64 * 8320 + 32768) = 4521984
//   layer 2 (plain, residual 0): K = V = 8 * 64 * 16384 = 8388608
// total 1835008*2 + 2621440 + 4521984 + 8388608*2 = 27590656
// fp16: 3 layers * 2 sides * 4096 * 8 * 128 * 2 = 50331648
// TEXT: kvc cache report: 3 layers, batch 1 x context 4096 tokens, 64-token pages
// TEXT-NEXT: layer  key                 B/token  value               B/token  residual
// TEXT-NEXT:     0  q2:channel:g32        384.0  q2:token:g32          384.0       128
// TEXT-NEXT:     1  q4:channel:g64        576.0  fp8:e4m3             1040.0       128
// TEXT-NEXT:     2  fp16                 2048.0  fp16                 2048.0         0
// TEXT-NEXT: KV cache: 26.31 MiB (27590656 bytes) vs fp16 48.00 MiB (50331648 bytes): 45.2% saved, 1.82x smaller

// 1000 tokens: 896 compressed (7 residual blocks) = 14 pages per head, 104
// in the staging buffer. Layer 0 K: 8 * (14 * 3072 + 32768) = 606208, for 4
// sequences 2424832.
// JSON: "batch": 4,
// JSON: "context": 1000,
// JSON: "layer": 0,
// JSON: "key": {
// JSON-NEXT: "encoding": "q2:channel:g32",
// JSON-NEXT: "bytes_per_token": 384,
// JSON-NEXT: "bytes": 2424832
// JSON: "value": {
// JSON-NEXT: "encoding": "q2:token:g32",
// JSON: "layer": 1,
// JSON: "encoding": "q4:channel:g64",
// JSON: "encoding": "fp8:e4m3",
// JSON: "fp16_kv_bytes": 49152000,

// FILE: "page_tokens": 64,

// BADFORMAT: error: kvc-cache-report: bad format 'yaml' (expected text or json)
// BADPAGE: error: kvc-cache-report: layer 0 key: page tokens must be a positive multiple of 32 (got 48)

// The IR is printed unchanged.
// IR-LABEL: func.func @model
// IR: return

func.func @model(
    %l0: !kvc.cache<1x8x?x128xf16, #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 128>>,
    %l1: !kvc.cache<1x8x?x128xf16, #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 64>, value = #kvc.fp8<e4m3>, residual = 128>>,
    %l2: !kvc.cache<1x8x?x128xf16>) {
  return
}
