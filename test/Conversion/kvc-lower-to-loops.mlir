// RUN: kvc-opt %s -split-input-file --kvc-lower-to-loops | FileCheck %s
// RUN: kvc-opt %s -split-input-file --kvc-cpu-pipeline | FileCheck %s --check-prefix=LLVM
// RUN: kvc-opt %s -split-input-file --kvc-lower-to-loops=append=generated | FileCheck %s --check-prefix=GEN
// RUN: kvc-opt %s -split-input-file --kvc-cpu-pipeline=append=generated | FileCheck %s --check-prefix=GENLLVM
// RUN: kvc-opt %s -split-input-file --kvc-lower-to-loops=key-reads=parts | FileCheck %s --check-prefix=PARTS
// RUN: kvc-opt %s -split-input-file --kvc-lower-to-loops=value-reads=f16 | FileCheck %s --check-prefix=VHALF

// Caches become runtime bindings (!llvm.ptr); append is a runtime call that
// updates the binding in place; attend is loops that read the packed pages
// through raw runtime pointers and dequantize as docs/layout.md says.

// CHECK-DAG: func.func private @kvc_rt_mlir_append(!llvm.ptr, memref<?x?x?x?xf32, strided<[?, ?, ?, ?], offset: ?>>, memref<?x?x?x?xf32, strided<[?, ?, ?, ?], offset: ?>>) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @kvc_rt_mlir_check_layout(!llvm.ptr, i64, i64, i64, i64, i64, i64) -> i32
// CHECK-DAG: func.func private @kvc_rt_mlir_check_head(!llvm.ptr, i64, i64, i64, i64, i64) -> i32
// CHECK-DAG: func.func private @kvc_rt_mlir_pool(!llvm.ptr, i32) -> !llvm.ptr
// CHECK-DAG: func.func private @kvc_rt_mlir_page_table(!llvm.ptr, i64) -> !llvm.ptr
// CHECK-DAG: func.func private @kvc_rt_mlir_residual(!llvm.ptr, i64, i32) -> !llvm.ptr
// CHECK-LABEL: func.func @kivi2_step
// CHECK-SAME: (%[[CACHE:.*]]: !llvm.ptr, %{{.*}}: tensor<1x8x1x64xf32>, %{{.*}}: tensor<1x2x1x64xf16>, %{{.*}}: tensor<1x2x1x64xf16>) -> (tensor<1x8x1x64xf32>, !llvm.ptr)
// f16 tokens are widened for the runtime, which rounds them to fp16 itself.
// CHECK: arith.extf %{{.*}} : tensor<1x2x1x64xf16> to tensor<1x2x1x64xf32>
// CHECK: call @kvc_rt_mlir_append(%[[CACHE]],
// The layout the code was compiled for: 64-token pages of two 2-bit g32
// blocks of 64 * (64*2/8 + 64/32*4) = 1536 bytes for both sides, residual
// 128, 2 heads of 64; then each head's encodings (2-bit channel/token g32
// descriptors kind | bits << 8 | axis << 16 | group << 32 from
// kvc_runtime_binding.h: 137438953985 = q2 channel g32, 137439019521 = q2
// token g32) and block offsets.
// CHECK: call @kvc_rt_mlir_check_layout(%[[CACHE]], %c64_i64, %c3072_i64, %c3072_i64{{.*}}, %c128_i64, %c2_i64, %c64_i64{{.*}})
// CHECK: call @kvc_rt_mlir_check_head(%[[CACHE]], %c0_i64, %c137438953985_i64, %c137439019521_i64, %c0_i64{{.*}}, %c0_i64{{.*}})
// CHECK: call @kvc_rt_mlir_check_head(%[[CACHE]], %c1_i64, %c137438953985_i64{{.*}}, %c137439019521_i64{{.*}}, %c1536_i64{{.*}}, %c1536_i64{{.*}})
// CHECK: scf.if
// CHECK: call @kvc_rt_mlir_pool(%[[CACHE]], %c0_i32
// CHECK: call @kvc_rt_mlir_pool(%[[CACHE]], %c1_i32
// CHECK: scf.for
// CHECK: call @kvc_rt_mlir_num_tokens
// CHECK: call @kvc_rt_mlir_compressed_tokens
// CHECK: call @kvc_rt_mlir_page_table
// Keys (PageReader::foldCompressedRow): a token is located once (its page
// through the page table), then four channels at a time: each channel
// pair's 2-bit codes from one 4-byte load of the two 16-bit halves that
// the page's channel pairing puts side by side (docs/layout.md), shifted
// and masked (the second channel 16 bits higher); the two pairs' fp16
// (scale, scale, zero, zero) in one 16-byte load (channel 0's scale
// element 0, zero element 2); each code converted (uitofp: the CPU
// converts at full speed), scaled and offset as a separate multiply and
// add.
// CHECK: scf.if
// CHECK: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> i32
// CHECK: scf.for %{{.*}} = %{{.*}} to %c64{{.*}} step %c4
// CHECK: %[[HALVES:.*]] = llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> i32
// CHECK: %[[SHIFTED:.*]] = arith.shrui %[[HALVES]], %{{.*}} : i32
// CHECK: %[[CODE:.*]] = arith.andi %[[SHIFTED]], %c3_i32
// CHECK: %[[SECOND:.*]] = arith.shrui %[[SHIFTED]], %c16_i32{{.*}} : i32
// CHECK: arith.andi %[[SECOND]], %c3_i32
// CHECK: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> i32
// CHECK: %[[PARAMS:.*]] = llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr -> vector<8xf16>
// CHECK: %[[C0:.*]] = llvm.mlir.constant(0 : i32) : i32
// CHECK: llvm.extractelement %[[PARAMS]][%[[C0]] : i32] : vector<8xf16>
// CHECK: %[[C2:.*]] = llvm.mlir.constant(2 : i32) : i32
// CHECK: llvm.extractelement %[[PARAMS]][%[[C2]] : i32] : vector<8xf16>
// CHECK: arith.uitofp %[[CODE]] : i32 to f32
// CHECK: %[[SCALED:.*]] = arith.mulf
// CHECK: arith.addf %[[SCALED]]
// Residual rows: eight fp16 keys a load.
// CHECK: } else {
// CHECK: scf.for %{{.*}} = %{{.*}} to %c64{{.*}} step %c8
// CHECK: llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr -> vector<8xf16>
// CHECK: math.exp
// Values (PageReader spans, as the GPU value pass reads them): 4 channels
// at a time for GQA 4 (valueSpanChannels), one accumulator each; a token
// located once, the span's four 2-bit codes from one word shifted to the
// span's first code, its group's (scale, zero) pair one 4-byte load;
// residual rows one 8-byte load.
// CHECK: scf.for %{{.*}} = %{{.*}} to %c64 step %c4
// CHECK: scf.for {{.*}} -> (f32, f32, f32, f32) {
// CHECK: scf.if %{{.*}} -> (f32, f32, f32, f32) {
// CHECK: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> i32
// CHECK: %[[WORD:.*]] = llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> i32
// CHECK: %[[SPAN:.*]] = arith.shrui %[[WORD]], %{{.*}} : i32
// CHECK: arith.andi %[[SPAN]], %c3_i32
// CHECK: arith.shrui %[[SPAN]], %c6_i32
// CHECK: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> vector<2xf16>
// CHECK: } else {
// CHECK: llvm.load %{{.*}} {alignment = 8 : i64} : !llvm.ptr -> vector<4xf16>
// CHECK: } else {
// CHECK: linalg.fill
// CHECK: return %{{.*}}, %[[CACHE]] : tensor<1x8x1x64xf32>, !llvm.ptr

// The whole pipeline ends in the LLVM dialect; the attention output became an
// out-parameter, so the function returns the binding only.
// LLVM: llvm.call @_mlir_ciface_kvc_rt_mlir_append
// LLVM-LABEL: llvm.func @kivi2_step
// LLVM-SAME: -> !llvm.ptr
// LLVM: llvm.call @kvc_rt_mlir_append
// LLVM: llvm.call @kvc_rt_mlir_check_layout
// LLVM-NOT: kvc.attend

// append=generated: the runtime only reserves the token (after the same
// layout checks as attention), and loops write it. Per batch entry, its
// 40-byte record (page table, K and V residual rows, n1, c(n1), n0, c(n0));
// per KV head, the flush of c(n1) - c(n0) tokens: 2-bit channel-axis keys
// in groups of 32 tokens of a channel (items (c1 - c0) / 32 * 64), each in
// a live page (entry >= 0), read from the staged fp16 rows or the input
// rounded to fp16, then packed into words; then the staging of the new
// rows as fp16.
// GEN-LABEL: func.func @kivi2_step
// GEN: call @kvc_rt_mlir_check_layout
// GEN: call @kvc_rt_mlir_check_head(%arg0, %c1_i64
// GEN: scf.if
// GEN-NEXT: arith.index_cast
// GEN-NEXT: %[[REC:.*]] = func.call @kvc_rt_mlir_reserve_append(%arg0, %{{.*}}) : (!llvm.ptr, i64) -> !llvm.ptr
// GEN: %[[RESERVED:.*]] = llvm.icmp "ne" %[[REC]]
// GEN-NEXT: scf.if %[[RESERVED]] {
// GEN: %[[KPOOL:.*]] = func.call @kvc_rt_mlir_pool(%arg0, %c0_i32
// GEN: scf.for %[[B:.*]] = %{{.*}} to %{{.*}} step
// GEN: arith.muli %[[B]], %c40 : index
// GEN: %[[FLUSHED:.*]] = arith.subi
// GEN: %[[GROUPS:.*]] = arith.divui %[[FLUSHED]], %c32
// GEN: arith.muli %[[GROUPS]], %c64 : index
// GEN: arith.cmpi sge, %{{.*}}, %c0_i32
// GEN: scf.for {{.*}} iter_args
// GEN: llvm.load %{{.*}} : !llvm.ptr -> f16
// GEN: memref.load %{{.*}} : memref<1x2x1x64xf16>
// GEN: arith.truncf %{{.*}} : f32 to f16
// GEN: llvm.store %{{.*}}, %{{.*}} {alignment = 4 : i64} : i32, !llvm.ptr
// GEN: llvm.store %{{.*}}, %{{.*}} {alignment = 2 : i64} : f16, !llvm.ptr
// GEN: arith.maxui
// GEN: llvm.store %{{.*}}, %{{.*}} {alignment = 2 : i64} : f16, !llvm.ptr
// GEN-NOT: kvc_rt_mlir_append
// GEN: call @kvc_rt_mlir_check_layout
// GEN-NOT: kvc_rt_mlir_append
// GEN-LABEL: func.func @fp8_values
// GENLLVM-LABEL: llvm.func @kivi2_step
// GENLLVM: llvm.call @kvc_rt_mlir_reserve_append
// GENLLVM-NOT: kvc_rt_mlir_append
// GENLLVM: llvm.call @kvc_rt_mlir_check_layout
#kivi2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 128>
// value-reads=f16 over 2-bit token-axis values at head_dim 64: spans of
// D/8 = 8 channels read as the tensor-core value pass reads them, straight
// into fp16 pairs (codes in the mantissas of 1024.0, one fp16 fma a pair),
// each half extended and weighed at its channel.
// VHALF-LABEL: func.func @kivi2_step
// VHALF: llvm.load %{{.*}} {alignment = 2 : i64} : !llvm.ptr -> i16
// VHALF: arith.ori %{{.*}}, %c1677747200_i32
// VHALF: llvm.bitcast %{{.*}} : i32 to vector<2xf16>
// VHALF-COUNT-4: llvm.intr.fma(%{{.*}}) : (vector<2xf16>, vector<2xf16>, vector<2xf16>) -> vector<2xf16>
// VHALF: } else {
// VHALF: llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr -> vector<8xf16>
// VHALF: llvm.shufflevector %{{.*}} [0, 4] : vector<8xf16>
// VHALF: llvm.extractelement
// VHALF: arith.extf %{{.*}} : f16 to f32
// key-reads=parts over 2-bit channel-axis keys: each 16-channel part of a
// token read as the tensor-core key pass reads it, through the token pairs
// of its 32-token unit: the lane group's four consecutive tokens of a
// channel pair (one byte of each half of a stored word: the page's channel
// pairing) in one 4-byte load, shifted once (by 8 for odd lane groups),
// two channel pairs' scales and zeros in one 16-byte load ((scale, scale)
// and (zero, zero) as they are), codes ORed into fp16 mantissas at bits 0,
// 2, 4 and 6 (tokens 4g .. 4g + 3), after all codes one fp16 fma a pair
// (the GPU pass reads them as subnormals and folds the scales and zeros
// into its products instead), no transposes (residual units: fp16 rows);
// token % 32 picks the lane group, then the tile and the row.
// PARTS-LABEL: func.func @kivi2_step
// PARTS: arith.remui %{{.*}}, %c32 : index
// PARTS: %[[PAIRS:.*]]:32 = scf.if %{{.*}} -> (vector<2xf16>{{(, vector<2xf16>){31} ?}})
// PARTS: %[[PARAMS:.*]] = llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr -> vector<8xf16>
// PARTS: %[[SCALE:.*]] = llvm.shufflevector %[[PARAMS]], %[[PARAMS]] [0, 1]
// PARTS: %[[ZERO:.*]] = llvm.shufflevector %[[PARAMS]], %[[PARAMS]] [2, 3]
// PARTS: %[[WORD:.*]] = llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> i32
// PARTS-NEXT: %[[CODES:.*]] = arith.shrui %[[WORD]], %[[SHIFT:.*]] : i32
// PARTS: arith.andi %[[CODES]], %c196611_i32
// PARTS: arith.ori %{{.*}}, %c1677747200_i32
// PARTS: arith.andi %[[CODES]], %c786444_i32
// PARTS: arith.ori %{{.*}}, %c1543527424_i32
// PARTS: arith.andi %[[CODES]], %c3145776_i32
// PARTS: arith.ori %{{.*}}, %c1409307648_i32
// PARTS: arith.andi %[[CODES]], %c12583104_i32
// PARTS: arith.ori %{{.*}}, %c1275087872_i32
// PARTS-NOT: arith.shrui
// PARTS: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> i32
// PARTS-NEXT: arith.shrui %{{.*}}, %[[SHIFT]] : i32
// PARTS-COUNT-6: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> i32
// PARTS-NOT: vector<2xi32>
// PARTS-NOT: llvm.shufflevector %{{.*}}, %{{.*}} [0, 2] : vector<2xf16>
// PARTS: llvm.intr.fma(%{{.*}}, %[[SCALE]], %[[ZERO]])
// PARTS: } else {
// PARTS: llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr -> vector<8xf16>
// PARTS: %[[ROW0:.*]] = arith.select %{{.*}}, %[[PAIRS]]#8, %[[PAIRS]]#0 : vector<2xf16>
// PARTS: %[[ROW1:.*]] = arith.select %{{.*}}, %[[PAIRS]]#24, %[[PAIRS]]#16 : vector<2xf16>
// PARTS: arith.select %{{.*}}, %[[ROW1]], %[[ROW0]] : vector<2xf16>
// PARTS: arith.extf %{{.*}} : f16 to f32
func.func @kivi2_step(%cache: !kvc.cache<1x2x?x64xf16, #kivi2>, %q: tensor<1x8x1x64xf32>,
                      %k: tensor<1x2x1x64xf16>, %v: tensor<1x2x1x64xf16>)
    -> (tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #kivi2>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x64xf16, #kivi2>, tensor<1x2x1x64xf16>, tensor<1x2x1x64xf16>
  %o = kvc.attend %q, %c {causal} : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #kivi2> -> tensor<1x8x1x64xf32>
  return %o, %c : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #kivi2>
}

// -----
// fp8 values decode through a 256-entry table computed by the numerics
// library; 3-bit keys read their third bit plane from word 2 of the unit.
// Codes 0, 1, 2 decode to 0, 2^-16 (0x37800000) and 2^-15 (0x38000000).
// CHECK: memref.global "private" constant @kvc_fp8_e5m2_table : memref<256xf32> = dense<"0x000000000000803700000038
// CHECK-LABEL: func.func @fp8_values
// CHECK: memref.get_global @kvc_fp8_e5m2_table
// A row of 3-bit token-axis keys is two packing units: read as rows, a
// loop over them, each two low-plane words in one load and one (scale,
// zero) pair; key-reads=parts reads the row in four 16-channel parts, each
// with its own word load and pair (the tensor-core key pass's reads), and
// no two-word code load.
// CHECK: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> vector<2xi32>
// PARTS-LABEL: func.func @fp8_values
// PARTS-NOT: vector<2xi32>
// PARTS: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> vector<2xf16>
// The query and the key are rounded to fp16 before their product, as
// tensor cores take them.
// PARTS: arith.truncf %{{.*}} : f32 to f16
// PARTS: arith.truncf %{{.*}} : f32 to f16
// PARTS-COUNT-3: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> vector<2xf16>
// PARTS-NOT: vector<2xi32>
// PARTS: return
// value-reads=f16: each decoded value (the fp8 table's entry times the
// row's scale) is rounded to fp16 before its weighted sum, as the tensor-core
// value pass takes it; keys are not.
// VHALF-LABEL: func.func @fp8_values
// VHALF-NOT: arith.truncf
// VHALF: memref.get_global @kvc_fp8_e5m2_table
// VHALF: %[[ENTRY:.*]] = memref.load %{{.*}} : memref<256xf32>
// VHALF: %[[VALUE:.*]] = arith.mulf %[[ENTRY]], %{{.*}} : f32
// VHALF: %[[HALF:.*]] = arith.truncf %[[VALUE]] : f32 to f16
// VHALF: %[[ROUNDED:.*]] = arith.extf %[[HALF]] : f16 to f32
// VHALF: arith.mulf %{{.*}}, %[[ROUNDED]] : f32
// VHALF-COUNT-7: arith.truncf %{{.*}} : f32 to f16
// VHALF: return
// CHECK: arith.andi %{{.*}}, %c1_i32
// CHECK: arith.shli
func.func @fp8_values(%c: !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 3, axis = token, group = 32>, value = #kvc.fp8<e5m2>, residual = 0>>,
                      %q: tensor<1x2x4x64xf32>) -> tensor<1x2x4x64xf32> {
  %o = kvc.attend %q, %c : tensor<1x2x4x64xf32>, !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 3, axis = token, group = 32>, value = #kvc.fp8<e5m2>, residual = 0>> -> tensor<1x2x4x64xf32>
  return %o : tensor<1x2x4x64xf32>
}

// -----
// Per-KV-head encodings (kvc-select-bitwidths granularity=head): head 0
// keeps 4-bit keys, head 1 2-bit ones. A page holds head 0's K block
// (64 * (64*4/8 + 2*4) = 2560 bytes) then head 1's (1536); the V blocks are
// both 1536 bytes. Each head is read with its own encoding and offset.
#widest = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>,
                        value = #kvc.quant<bits = 2, axis = token, group = 32>,
                        residual = 64>
#head1 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 64>
// CHECK-LABEL: func.func @per_head
// (137438954497 = q4 channel g32.)
// CHECK: call @kvc_rt_mlir_check_layout(%[[CACHE:[^,]*]], %c64_i64, %c4096_i64, %c3072_i64, %c64_i64{{.*}}, %c2_i64, %c64_i64{{.*}})
// CHECK: call @kvc_rt_mlir_check_head(%[[CACHE]], %c0_i64, %c137438954497_i64, %c137439019521_i64, %c0_i64{{.*}}, %c0_i64{{.*}})
// CHECK: call @kvc_rt_mlir_check_head(%[[CACHE]], %c1_i64, %c137438953985_i64, %c137439019521_i64{{.*}}, %c2560_i64, %c1536_i64)
// Head 0's query heads (0..3) read 4-bit codes (mask 15), head 1's (4..7)
// 2-bit codes (mask 3) from block offset 2560.
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c4{{.*}} step
// CHECK: arith.andi %{{.*}}, %c15_i32
// CHECK: scf.for %{{.*}} = %c4{{.*}} to %c8{{.*}} step
// CHECK: %c2560
// CHECK: arith.andi %{{.*}}, %c3_i32
func.func @per_head(%cache: !kvc.cache<1x2x?x64xf16, #widest> {kvc.head_encodings = [#widest, #head1]},
                    %q: tensor<1x8x1x64xf32>, %k: tensor<1x2x1x64xf32>)
    -> (tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #widest>) {
  %c = kvc.append %cache, %k, %k : !kvc.cache<1x2x?x64xf16, #widest>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #widest> -> tensor<1x8x1x64xf32>
  return %o, %c : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #widest>
}

// -----
// The attention mass (kvc.attend's second result): sized by the longest
// sequence (a loop over kvc_rt_mlir_num_tokens), zero-filled, and after each
// query's softmax sum every visible token's weight / sum is added to
// mass[batch, kv_head, token].
// CHECK-LABEL: func.func @attention_mass
// CHECK: %[[LONGEST:.*]] = scf.for {{.*}} iter_args
// CHECK: call @kvc_rt_mlir_num_tokens
// CHECK: arith.maxui
// CHECK: %[[MASS:.*]] = memref.alloc(%[[LONGEST]]) : memref<2x2x?xf32>
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%[[MASS]] : memref<2x2x?xf32>)
// CHECK: math.exp
// CHECK: scf.for %[[T:.*]] = %{{.*}} to %{{.*}} step
// CHECK: %[[W:.*]] = memref.load %{{.*}}[%[[T]]] : memref<?xf32>
// CHECK: %[[P:.*]] = arith.divf %[[W]], %{{.*}} : f32
// CHECK: %[[OLD:.*]] = memref.load %[[MASS]][%{{.*}}, %{{.*}}, %[[T]]]
// CHECK: %[[NEW:.*]] = arith.addf %[[OLD]], %[[P]] : f32
// CHECK: memref.store %[[NEW]], %[[MASS]][%{{.*}}, %{{.*}}, %[[T]]]
// CHECK: bufferization.to_tensor %[[MASS]]
func.func @attention_mass(%c: !kvc.cache<2x2x?x64xf16>, %q: tensor<2x4x1x64xf32>)
    -> (tensor<2x4x1x64xf32>, tensor<2x2x?xf32>) {
  %o, %m = kvc.attend %q, %c {causal} : tensor<2x4x1x64xf32>, !kvc.cache<2x2x?x64xf16> -> tensor<2x4x1x64xf32>, tensor<2x2x?xf32>
  return %o, %m : tensor<2x4x1x64xf32>, tensor<2x2x?xf32>
}

// -----
// Eviction: kvc.evict becomes one runtime call with the scores and the
// policy (h2o = 1, sink, window, budget); attention over a cache that
// declares eviction asks the runtime for each (sequence, KV head)'s live
// bitmap and reads a token's key and value only when its bit is set.
#h2o = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                     value = #kvc.quant<bits = 2, axis = token, group = 32>,
                     residual = 64,
                     evict = #kvc.evict<policy = h2o, sink = 4, window = 16, budget = 48>>
// CHECK-LABEL: func.func @h2o_step
// CHECK: %[[BITMAP:.*]] = func.call @kvc_rt_mlir_live_bitmap(%{{.*}}, %{{.*}}, %{{.*}}) : (!llvm.ptr, i64, i64) -> !llvm.ptr
// CHECK: %[[NULL:.*]] = llvm.icmp "eq" %[[BITMAP]], %{{.*}} : !llvm.ptr
// CHECK: %[[LIVE:.*]] = scf.if %[[NULL]] -> (i1)
// CHECK: arith.shrui %{{.*}}, %c3
// CHECK: llvm.load %{{.*}} : !llvm.ptr -> i8
// CHECK: arith.shrui %{{.*}}, %{{.*}} : i8
// CHECK: scf.if %[[LIVE]] -> (f32)
// CHECK: call @kvc_rt_mlir_evict(%{{.*}}, %{{.*}}, %c1_i64{{.*}}, %c4_i64, %c16_i64, %c48_i64)
func.func @h2o_step(%c: !kvc.cache<1x2x?x64xf16, #h2o>, %q: tensor<1x8x1x64xf32>)
    -> (tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #h2o>) {
  %o, %m = kvc.attend %q, %c {causal} : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #h2o> -> tensor<1x8x1x64xf32>, tensor<1x2x?xf32>
  %c1 = kvc.evict %c scores(%m : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 16, budget = 48> : !kvc.cache<1x2x?x64xf16, #h2o>
  return %o, %c1 : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #h2o>
}

// -----
// Per-KV-head budgets: the policy's budgets go to the runtime in a stack
// buffer, one i64 per KV head.
#heads = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 64,
                       evict = #kvc.evict<policy = h2o, sink = 4, window = 16, budget = 48, head_budgets = [48, 24]>>
// CHECK-LABEL: func.func @h2o_head_budgets
// CHECK: %[[BUDGETS:.*]] = memref.alloca() : memref<2xi64>
// CHECK: memref.store %c48_i64, %[[BUDGETS]][%c0] : memref<2xi64>
// CHECK: memref.store %c24_i64, %[[BUDGETS]][%c1] : memref<2xi64>
// CHECK: %[[CAST:.*]] = memref.cast %[[BUDGETS]] : memref<2xi64> to memref<?xi64>
// CHECK: call @kvc_rt_mlir_evict_heads(%{{.*}}, %{{.*}}, %c1_i64{{.*}}, %c4_i64, %c16_i64, %[[CAST]])
// CHECK-NOT: call @kvc_rt_mlir_evict(
// CHECK: return
func.func @h2o_head_budgets(%c: !kvc.cache<1x2x?x64xf16, #heads>, %s: tensor<1x2x?xf32>)
    -> !kvc.cache<1x2x?x64xf16, #heads> {
  %c1 = kvc.evict %c scores(%s : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 16, budget = 48, head_budgets = [48, 24]> : !kvc.cache<1x2x?x64xf16, #heads>
  return %c1 : !kvc.cache<1x2x?x64xf16, #heads>
}

// -----
// Two-tier eviction: kvc.evict passes per-head budgets and the demotion
// encodings' descriptors (q2 token g32 = 137439019521, fp8 e5m2 = 16777218);
// attention asks for the sequence's demoted pages once per query and reads
// an evicted token from its page (slot t % 64 of the head's block) unless the
// sequence has none.
#two_tier = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>,
                          value = #kvc.quant<bits = 4, axis = token, group = 32>,
                          residual = 64,
                          evict = #kvc.evict<policy = h2o, sink = 4, window = 16, budget = 48,
                                             demote_key = #kvc.quant<bits = 2, axis = token, group = 32>,
                                             demote_value = #kvc.fp8<e5m2>>>
// CHECK-LABEL: func.func @two_tier_step
// CHECK: %[[PAGES:.*]] = func.call @kvc_rt_mlir_demoted_pages(%{{.*}}, %{{.*}}, %c137439019521_i64{{.*}}, %c16777218_i64{{.*}}) : (!llvm.ptr, i64, i64, i64) -> !llvm.ptr
// CHECK: %[[NONE:.*]] = llvm.icmp "eq" %[[PAGES]], %{{.*}} : !llvm.ptr
// CHECK: scf.if %[[NONE]] -> (f32)
// CHECK: llvm.getelementptr %[[PAGES]][%{{.*}}] : (!llvm.ptr, i64) -> !llvm.ptr, !llvm.ptr
// CHECK: llvm.load %{{.*}} {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
// CHECK: call @kvc_rt_mlir_evict_demote(%{{.*}}, %{{.*}}, %c1_i64{{.*}}, %c4_i64, %c16_i64, %{{.*}}, %c137439019521_i64{{.*}}, %c16777218_i64{{.*}}) : (!llvm.ptr, memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>, i64, i64, i64, memref<?xi64>, i64, i64) -> ()
func.func @two_tier_step(%c: !kvc.cache<1x2x?x64xf16, #two_tier>, %q: tensor<1x8x1x64xf32>)
    -> (tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #two_tier>) {
  %o, %m = kvc.attend %q, %c {causal} : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #two_tier> -> tensor<1x8x1x64xf32>, tensor<1x2x?xf32>
  %c1 = kvc.evict %c scores(%m : tensor<1x2x?xf32>) with <policy = h2o, sink = 4, window = 16, budget = 48, demote_key = #kvc.quant<bits = 2, axis = token, group = 32>, demote_value = #kvc.fp8<e5m2>> : !kvc.cache<1x2x?x64xf16, #two_tier>
  return %o, %c1 : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #two_tier>
}

// -----
// Without eviction in the encoding, attention reads no bitmap.
// CHECK-LABEL: func.func @no_eviction
// CHECK-NOT: kvc_rt_mlir_live_bitmap
// CHECK: return
func.func @no_eviction(%c: !kvc.cache<1x2x?x64xf16>, %q: tensor<1x2x1x64xf32>) -> tensor<1x2x1x64xf32> {
  %o = kvc.attend %q, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x2x1x64xf32>
  return %o : tensor<1x2x1x64xf32>
}

// -----
// kvc.quantize: loops over the groups (token t, channel group g), each
// quantized by GroupQuantizer as the numerics library does: saturate to the
// fp16 range, minimum/maximum and a NaN/Inf flag, fp16 scale and zero (fp16
// NaN for a poisoned group), codes clamped and rounded half to even by
// adding and subtracting 2^23, packed 16 two-bit codes a word and stored
// as bytes. Execution against the library: Integration/quantize-loops.mlir.
// CHECK-LABEL: func.func @quantize_token
// CHECK: %[[X:.*]] = bufferization.to_buffer %arg0 read_only : tensor<2x64xf16> to memref<2x64xf16>
// CHECK: %[[CODES:.*]] = memref.alloc() : memref<2x16xi8>
// CHECK: %[[SCALES:.*]] = memref.alloc() : memref<2x2xf16>
// CHECK: %[[ZEROS:.*]] = memref.alloc() : memref<2x2xf16>
// CHECK: scf.for %[[T:.*]] = %{{.*}} to %c2
// CHECK: scf.for %[[G:.*]] = %{{.*}} to %c2
// CHECK: %[[STATS:.*]]:3 = scf.for {{.*}} -> (f32, f32, i1)
// CHECK: memref.load %[[X]][%[[T]], %{{.*}}] : memref<2x64xf16>
// CHECK: arith.cmpf uno
// CHECK: arith.minimumf
// CHECK: arith.maximumf
// CHECK: %[[RANGE:.*]] = arith.subf %[[STATS]]#1, %[[STATS]]#0 : f32
// CHECK: %[[DIV:.*]] = arith.divf %[[RANGE]], %cst{{.*}} : f32
// CHECK: %[[NAN:.*]] = arith.bitcast %c32256_i16 : i16 to f16
// CHECK: %[[SCALE16:.*]] = arith.truncf %[[DIV]] : f32 to f16
// CHECK: %[[SCALE:.*]] = arith.select %[[STATS]]#2, %[[NAN]], %[[SCALE16]] : f16
// CHECK: scf.for %{{.*}} = %{{.*}} to %c32{{.*}} step %c32
// CHECK: arith.constant 0x4B000000 : f32
// CHECK: %[[BIASED:.*]] = arith.addf %{{.*}}, %{{.*}} : f32
// CHECK-NEXT: arith.subf %[[BIASED]], %{{.*}} : f32
// CHECK: arith.fptoui %{{.*}} : f32 to i32
// CHECK: arith.shli %{{.*}}, %c30_i32 : i32
// CHECK: arith.trunci %{{.*}} : i32 to i8
// CHECK: memref.store %{{.*}}, %[[CODES]][%[[T]], %{{.*}}] : memref<2x16xi8>
// CHECK: memref.store %[[SCALE]], %[[SCALES]][%[[T]], %[[G]]] : memref<2x2xf16>
// CHECK: memref.store %{{.*}}, %[[ZEROS]][%[[T]], %[[G]]] : memref<2x2xf16>
// CHECK: bufferization.to_tensor %[[CODES]] restrict writable : memref<2x16xi8> to tensor<2x16xi8>
func.func @quantize_token(%x: tensor<2x64xf16>) -> (tensor<2x16xi8>, tensor<2x2xf16>, tensor<2x2xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 2, axis = token, group = 32> : tensor<2x64xf16> -> tensor<2x16xi8>, tensor<2x2xf16>, tensor<2x2xf16>
  return %c, %s, %z : tensor<2x16xi8>, tensor<2x2xf16>, tensor<2x2xf16>
}

// -----
// A cache carried through scf.for (decode steps in one function) becomes a
// binding there too: the loop's iter_arg and result are !llvm.ptr, no
// unrealized casts back to !kvc.cache are left.
// CHECK-LABEL: func.func @steps_in_loop
// CHECK-SAME: (%[[CACHE:[^:]*]]: !llvm.ptr
// CHECK-NOT: unrealized_conversion_cast
// CHECK: %[[LAST:.*]] = scf.for {{.*}} iter_args(%[[C:.*]] = %[[CACHE]]) -> (!llvm.ptr) {
// CHECK: func.call @kvc_rt_mlir_append(%[[C]],
// CHECK: scf.yield %[[C]] : !llvm.ptr
// CHECK: return %[[LAST]] : !llvm.ptr
// LLVM-LABEL: llvm.func @steps_in_loop
// LLVM: llvm.call @kvc_rt_mlir_append
func.func @steps_in_loop(%c0: !kvc.cache<1x2x?x64xf16>, %k: tensor<1x2x1x64xf32>,
                         %v: tensor<1x2x1x64xf32>, %n: index) -> !kvc.cache<1x2x?x64xf16> {
  %lb = arith.constant 0 : index
  %one = arith.constant 1 : index
  %r = scf.for %i = %lb to %n step %one iter_args(%c = %c0) -> !kvc.cache<1x2x?x64xf16> {
    %c2 = kvc.append %c, %k, %v : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
    scf.yield %c2 : !kvc.cache<1x2x?x64xf16>
  }
  return %r : !kvc.cache<1x2x?x64xf16>
}
