// RUN: kvc-opt %s -split-input-file --kvc-lower-to-gpu | FileCheck %s
// RUN: kvc-opt %s -split-input-file --kvc-lower-to-gpu="block-threads=32" | FileCheck %s --check-prefix=THREADS32
// RUN: kvc-opt %s -split-input-file --kvc-lower-to-gpu="code-to-float=convert" | FileCheck %s --check-prefix=CONVERT
// RUN: kvc-opt %s -split-input-file --kvc-lower-to-gpu="split-blocks=1024" | FileCheck %s --check-prefix=ADAPTIVE
// RUN: kvc-opt %s -split-input-file --kvc-lower-to-gpu="split-blocks=0" | FileCheck %s --check-prefix=FIXED
// RUN: kvc-opt %s -split-input-file --kvc-lower-to-gpu="wait-on-return=false" | FileCheck %s --check-prefix=NOWAIT
// RUN: kvc-opt %s -split-input-file --kvc-lower-to-gpu | not grep prefetch
// RUN: kvc-opt %s -split-input-file --kvc-lower-to-gpu="l2-prefetch=bulk" | FileCheck %s --check-prefix=BULK
// RUN: kvc-opt %s -split-input-file --kvc-lower-to-gpu="l2-prefetch=lines l2-prefetch-bytes=3072" | FileCheck %s --check-prefix=LINES
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="key-product=mma" 2> %t.mma.err | FileCheck %s --check-prefix=MMA
// RUN: FileCheck %s --check-prefix=MMA-ERR < %t.mma.err
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="value-product=mma" 2> %t.vmma.err | FileCheck %s --check-prefix=VMMA
// RUN: FileCheck %s --check-prefix=VMMA-ERR < %t.vmma.err

// Decode attention becomes host code that checks the runtime's layout, asks
// the runtime for per-sequence records and a workspace, and launches a
// split-K kernel over (splits, KV heads, batch) and a combine kernel over
// (query heads, batch); the kernels land in @kvc_kernels.

#kivi2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 128>
// CHECK: module attributes {gpu.container_module}
// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%[[CACHE:.*]]: !llvm.ptr, %[[Q:.*]]: tensor<4x8x1x64xf32>)
// The kernels run on the cache's stream (after the runtime's copies, no
// host wait), entered as the async token the launches chain on.
// CHECK: %[[NONE:.*]] = llvm.mlir.zero : !llvm.ptr
// CHECK: %[[STREAM:.*]] = call @kvc_rt_mlir_gpu_stream(%[[CACHE]], %[[NONE]])
// CHECK: %[[TOKEN:.*]] = builtin.unrealized_conversion_cast %[[STREAM]] : !llvm.ptr to !gpu.async.token
// CHECK: call @kvc_rt_mlir_gpu_check_layout(%[[CACHE]], %c64_i64, %c3072_i64, %c3072_i64{{.*}}, %c128_i64, %c2_i64, %c64_i64{{.*}})
// CHECK: call @kvc_rt_mlir_check_head(%[[CACHE]], %c0_i64, %c137438953985_i64, %c137439019521_i64
// CHECK: call @kvc_rt_mlir_check_head(%[[CACHE]], %c1_i64,
// CHECK: %[[KPOOL:.*]] = call @kvc_rt_mlir_pool(%[[CACHE]], %c0_i32
// CHECK: %[[VPOOL:.*]] = call @kvc_rt_mlir_pool(%[[CACHE]], %c1_i32
// CHECK: %[[SEQS:.*]] = call @kvc_rt_mlir_gpu_sequences(%[[CACHE]])
// Splits of at most 512 tokens cover the longest sequence of the batch; by
// default (split-blocks=512) fewer (multiples of 32, at least 64) where 512
// would leave the grid short of 512 blocks: the longest x 4 sequences x 2
// KV heads / 512. The kernel gets the size.
// CHECK: %[[LONGEST:.*]] = scf.for
// CHECK: call @kvc_rt_mlir_num_tokens
// CHECK: %[[WORK:.*]] = arith.muli %[[LONGEST]], %c8 : index
// CHECK: %[[WANTED:.*]] = arith.ceildivui %[[WORK]], %c512 : index
// CHECK: %[[WARPS:.*]] = arith.ceildivui %[[WANTED]], %c32{{.*}} : index
// CHECK: %[[ROUNDED:.*]] = arith.muli %[[WARPS]], %c32{{.*}} : index
// CHECK: %[[ATLEAST:.*]] = arith.maxui %[[ROUNDED]], %c64{{.*}} : index
// CHECK: %[[SIZE:.*]] = arith.minui %c512{{.*}}, %[[ATLEAST]] : index
// CHECK: %[[COUNT:.*]] = arith.ceildivui %[[LONGEST]], %[[SIZE]] : index
// CHECK: %[[SPLITS:.*]] = arith.maxui %{{.*}}, %[[COUNT]] : index
// split-blocks=0: always splits of split-tokens.
// FIXED-LABEL: func.func @decode
// FIXED: %[[LONGEST:.*]] = scf.for
// FIXED: call @kvc_rt_mlir_num_tokens
// FIXED-NOT: arith.minui
// FIXED: %[[COUNT:.*]] = arith.ceildivui %[[LONGEST]], %c512 : index
// FIXED: %[[SPLITS:.*]] = arith.maxui %{{.*}}, %[[COUNT]] : index
// FIXED: gpu.launch_func async [%{{.*}}] @kvc_kernels::@attend0_split0 blocks in (%[[SPLITS]], {{.*}}, %c0{{.*}} : index, %c512{{.*}} : index)
// l2-prefetch=bulk: the split's page blocks (1536 bytes: 64 tokens x 64
// channels x 2 bits, then the scales and zeros; keys and values alike) are
// requested into L2 first, a thread a page, each side at most
// 49152 / 1536 = 32 pages (those holding compressed tokens of the split):
// the keys', then the values' that fit in the rest of the 49152 bytes; a
// page the page table marks released (negative) is skipped. After the key
// pass, before its barrier, the values' the budget left out.
// BULK-LABEL: gpu.func @attend0_split0
// BULK: %[[KPAGES:.*]] = arith.minui %{{.*}}, %c32{{.*}} : index
// BULK: %[[VPAGES:.*]] = arith.minui %{{.*}}, %c32{{.*}} : index
// BULK: %[[KBYTES:.*]] = arith.muli %[[KPAGES]], %c1536{{.*}} : index
// BULK: %[[USED:.*]] = arith.minui %[[KBYTES]], %c49152{{.*}} : index
// BULK: %[[LEFT:.*]] = arith.subi %c49152{{.*}}, %[[USED]] : index
// BULK: %[[FIT:.*]] = arith.divui %[[LEFT]], %c1536{{.*}} : index
// BULK: %[[VSTART:.*]] = arith.minui %[[VPAGES]], %[[FIT]] : index
// BULK: arith.subi %[[KPAGES]], %c0{{.*}} : index
// BULK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c128
// BULK: %[[PAGE:.*]] = llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> i32
// BULK: %[[HELD:.*]] = arith.cmpi sge, %[[PAGE]], %c0{{.*}} : i32
// BULK: scf.if %[[HELD]]
// BULK: %[[AT:.*]] = llvm.getelementptr %{{.*}}[%{{.*}}] : (!llvm.ptr<1>, i64) -> !llvm.ptr<1>, i8
// BULK: nvvm.cp.async.bulk.prefetch %[[AT]], %c1536_i32 : <1>
// BULK: arith.subi %[[VSTART]], %c0{{.*}} : index
// BULK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c128
// BULK: nvvm.cp.async.bulk.prefetch %{{.*}}, %c1536_i32 : <1>
// BULK: gpu.barrier
// BULK: %[[KALL:.*]] = arith.minui %{{.*}}, %c32{{.*}} : index
// BULK: %[[VALL:.*]] = arith.minui %{{.*}}, %c32{{.*}} : index
// BULK: arith.muli %[[KALL]], %c1536{{.*}} : index
// BULK: %[[VFIRST:.*]] = arith.minui %[[VALL]], %{{.*}} : index
// BULK: %[[REST:.*]] = arith.subi %[[VALL]], %[[VFIRST]] : index
// BULK: arith.muli %[[REST]], %c1{{.*}} : index
// BULK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c128
// BULK: nvvm.cp.async.bulk.prefetch %{{.*}}, %c1536_i32 : <1>
// BULK-NEXT: }
// BULK-NEXT: }
// BULK-NEXT: gpu.barrier
// l2-prefetch=lines with a 3072-byte budget: two key pages, which use it
// all, then two value pages after the key pass; each page 1536 / 128 + 1 =
// 13 prefetch.global.L2 a block, the last address clamped to the block's
// last byte (1535).
// LINES-LABEL: gpu.func @attend0_split0
// LINES: arith.minui %{{.*}}, %c2{{.*}} : index
// LINES: %[[ITEMS:.*]] = arith.muli %{{.*}}, %c13{{.*}} : index
// LINES: scf.for %[[ITEM:.*]] = %{{.*}} to %[[ITEMS]] step %c128
// LINES: %[[LINE:.*]] = arith.remui %[[ITEM]], %c13{{.*}} : index
// LINES: %[[STEP:.*]] = arith.muli %[[LINE]], %c128{{.*}} : index
// LINES: arith.minui %[[STEP]], %c1535{{.*}} : index
// LINES: nvvm.prefetch level = L2, %{{.*}} : !llvm.ptr<1>
// LINES: nvvm.prefetch level = L2, %{{.*}} : !llvm.ptr<1>
// LINES: nvvm.prefetch level = L2, %{{.*}} : !llvm.ptr<1>
// The default, l2-prefetch=none: no prefetch (the RUN line's grep).
// split-blocks=1024: 512 tokens, or fewer (multiples of 32, at least 64)
// where that leaves the grid short of 1024 blocks: the longest x 4
// sequences x 2 KV heads / 1024. The kernel gets the size.
// ADAPTIVE-LABEL: func.func @decode
// ADAPTIVE: %[[LONGEST:.*]] = scf.for
// ADAPTIVE: call @kvc_rt_mlir_num_tokens
// ADAPTIVE: %[[WORK:.*]] = arith.muli %[[LONGEST]], %c8 : index
// ADAPTIVE: %[[WANTED:.*]] = arith.ceildivui %[[WORK]], %c1024 : index
// ADAPTIVE: %[[WARPS:.*]] = arith.ceildivui %[[WANTED]], %c32{{.*}} : index
// ADAPTIVE: %[[ROUNDED:.*]] = arith.muli %[[WARPS]], %c32{{.*}} : index
// ADAPTIVE: %[[ATLEAST:.*]] = arith.maxui %[[ROUNDED]], %c64{{.*}} : index
// ADAPTIVE: %[[SIZE:.*]] = arith.minui %c512{{.*}}, %[[ATLEAST]] : index
// ADAPTIVE: %[[COUNT:.*]] = arith.ceildivui %[[LONGEST]], %[[SIZE]] : index
// ADAPTIVE: %[[SPLITS:.*]] = arith.maxui %{{.*}}, %[[COUNT]] : index
// ADAPTIVE: gpu.launch_func async [%{{.*}}] @kvc_kernels::@attend0_split0 blocks in (%[[SPLITS]], {{.*}}, %c0{{.*}} : index, %[[SIZE]] : index)
// CHECK: %[[WS:.*]] = call @kvc_rt_mlir_gpu_workspace(%[[CACHE]],
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<4x8x1x64xf32>
// CHECK: %[[SPLIT:.*]] = gpu.launch_func async [%[[TOKEN]]] @kvc_kernels::@attend0_split0 blocks in (%[[SPLITS]], %c2{{.*}}, %c4{{.*}}) threads in (%c128{{.*}}, %c1{{.*}}, %c1{{.*}}) args(%{{.*}} : memref<4x8x1x64xf32>, %[[KPOOL]] : !llvm.ptr, %[[VPOOL]] : !llvm.ptr, %[[SEQS]] : !llvm.ptr, %[[WS]] : !llvm.ptr, %[[SPLITS]] : index, %{{.*}} : i32, %c0{{.*}} : index, %[[SIZE]] : index)
// CHECK: gpu.launch_func async [%[[SPLIT]]] @kvc_kernels::@attend0_combine blocks in (%c8{{.*}}, %c4{{.*}}, %c1{{.*}}) threads in (%c128{{.*}}, %c1{{.*}}, %c1{{.*}}) args(%[[WS]] : !llvm.ptr, %[[OUT]] : memref<4x8x1x64xf32>, %[[SPLITS]] : index, %{{.*}} : i32)
// CHECK: bufferization.to_tensor %[[OUT]]
// The one host wait, before the results are returned.
// CHECK-NEXT: call @kvc_rt_mlir_gpu_synchronize(%[[CACHE]])
// CHECK-NEXT: return

// The split kernel: shared memory for the 4 query vectors of the group, the
// split's 512 scores per query head and the reductions' per-warp values.
// CHECK: gpu.module @kvc_kernels
// CHECK: gpu.func @attend0_split0(%{{.*}}: memref<4x8x1x64xf32>, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: index, %{{.*}}: i32, %{{.*}}: index, %{{.*}}: index) workgroup(%{{.*}} : memref<4x64xf32, #gpu.address_space<workgroup>>, %{{.*}} : memref<4x512xf32, #gpu.address_space<workgroup>>, %[[SCRATCH:.*]] : memref<32xf32, #gpu.address_space<workgroup>>) kernel attributes {known_block_size = array<i32: 128, 1, 1>, nvvm.minctasm = 5 : i32}
// Runtime memory is read as global memory.
// CHECK: llvm.addrspacecast %{{.*}} : !llvm.ptr to !llvm.ptr<1>
// Keys dequantized in registers, the token located once (one page-table
// load), then four channels at a time: each channel pair's 2-bit codes
// from one 4-byte load (the page's channel pairs), their scales and zeros
// in one 16-byte load, each code made a float with an OR and a subtraction (no integer
// conversion: GPUs convert at a fraction of their float rate), a separate
// multiply and add (docs/layout.md).
// CHECK: scf.if
// CHECK: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> i32
// CHECK: scf.for %{{.*}} = %{{.*}} to %c64{{.*}} step %c4
// CHECK: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> i32
// CHECK: arith.andi %{{.*}}, %c3_i32
// CHECK: arith.shrui %{{.*}}, %c16_i32{{.*}} : i32
// CHECK: llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xf16>
// CHECK: arith.ori %{{.*}}, %c1258291200_i32
// CHECK: arith.bitcast %{{.*}} : i32 to f32
// CHECK: arith.subf
// CHECK-NOT: arith.uitofp
// CHECK: arith.mulf
// code-to-float=convert keeps the conversion (to compare both on a GPU).
// CONVERT-LABEL: gpu.func @attend0_split0
// CONVERT-NOT: arith.ori %{{.*}}, %c1258291200_i32
// CONVERT: arith.andi %{{.*}}, %c3_i32
// CONVERT: arith.uitofp %{{.*}} : i32 to f32
// CHECK: arith.addf
// The fp16 residual rows: eight keys a load.
// CHECK: } else {
// CHECK: llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xf16>
// Softmax: one pass over the scores gives the 4 heads' maxima (a loop with
// 4 results); one block reduction takes them all: each round of warp
// shuffles for every head, then the scratch (4 values a warp, the maxima
// in its first half) and one barrier. The same for the weights and their
// sums in the scratch's second half, whose barrier also orders the
// weights before the value pass: two barriers in all.
// CHECK: %[[MAX:.*]]:4 = scf.for %{{.*}} = %thread_id_x to
// CHECK: gpu.shuffle  xor %[[MAX]]#0, %c16_i32
// CHECK-NOT: gpu.barrier
// CHECK: gpu.shuffle  xor %[[MAX]]#3, %c16_i32
// CHECK-NOT: gpu.barrier
// CHECK-COUNT-4: memref.store %{{.*}}, %[[SCRATCH]]
// CHECK: gpu.barrier
// CHECK: memref.load %[[SCRATCH]][%c0
// CHECK-NOT: gpu.barrier
// CHECK: %[[SUM:.*]]:4 = scf.for %{{.*}} = %thread_id_x to
// CHECK-COUNT-4: math.exp
// CHECK: gpu.shuffle  xor %[[SUM]]#0, %c16_i32
// CHECK-NOT: gpu.barrier
// CHECK: gpu.shuffle  xor %[[SUM]]#3, %c16_i32
// CHECK-NOT: gpu.barrier
// CHECK: memref.store %{{.*}}, %[[SCRATCH]]
// CHECK: gpu.barrier
// CHECK: memref.load %[[SCRATCH]][%c16
// CHECK-NOT: gpu.barrier
// CHECK: llvm.store %{{.*}} {alignment = 4 : i64} : f32, !llvm.ptr<1>
// The value pass: a thread takes a span of 4 channels (valueSpanChannels
// for GQA 4) and one of 8 token lanes (adjacent threads), 4 query heads x 4
// channels of accumulators; a token located once, the span's four 2-bit
// codes from one word, its group's (scale, zero) in one 4-byte load;
// residual rows one 8-byte load; the lanes summed by shuffles within the
// warp (xor 4, 2, 1), and lane 0 stores.
// key-product=mma: the queries' fp16 B fragments (4 k-steps x 32 lanes x
// 2 registers) in shared memory; then, the 2-bit channel-axis keys being
// read in token pairs, a warp per 32-token unit, the units aligned to the
// sequence from the one holding the split's first token: lane (g, t)
// loads each channel pair of its slab (16t .. 16t+15) for both of the
// unit's tiles in one 8-byte load (the page's word of the pair's low
// halves and word of their high halves) and two pairs' scales and zeros in
// one 16-byte load, takes each tile's token of both channels with one lop3
// (mask and exponent) and subtracts the exponent's power: the codes, A's
// registers as they are, no transposes; units past the pages read their
// tokens' fp16 residual rows (scales 1, zeros 0). The scales are folded
// into the queries (2-bit keys: carrying 1/4; the scores' factor 0.5 = 4 /
// sqrt(64)):
// per k-step one fp16 multiply a B register, the two tiles' mma.sync
// m16n8k16, and one more over the zeros (A: the 16-byte load's registers,
// rows g + 8 the zeros), whose rows g + 8 are added to the scores. Twelve
// mma.sync (3 x 4 k-steps); scores are stored for query heads 2t and 2t + 1
// below 4 and tokens of the split. Two loops: the edge units (the split's partial first
// and last units and the residual buffer's) with the residual branch and
// the token bounds, then the units wholly in the split and in pages, with
// neither: one page-table load a unit, and stores checked by head only.
// MMA-LABEL: gpu.func @attend0_split0
// MMA-SAME: %{{.*}} : memref<4x32x2xvector<2xf16>, #gpu.address_space<workgroup>>)
// MMA: %[[QUARTER:.*]] = arith.constant 2.500000e-01 : f32
// MMA: arith.mulf %{{.*}}, %[[QUARTER]] : f32
// MMA: arith.truncf %{{.*}} : vector<2xf32> to vector<2xf16>
// MMA: memref.store %{{.*}} : memref<4x32x2xvector<2xf16>, #gpu.address_space<workgroup>>
// MMA: %[[WARP:.*]] = arith.divui %thread_id_x{{.*}}, %c32{{.*}} : index
// MMA: %[[MISALIGN:.*]] = arith.remui %[[START:[0-9]+]], %c32{{.*}} : index
// MMA: %[[BASE:.*]] = arith.subi %[[START]], %[[MISALIGN]] : index
// MMA: %[[END:.*]] = arith.addi %[[START]], %{{.*}} : index
// MMA: %[[SPAN:.*]] = arith.ceildivui %{{.*}}, %c32{{.*}} : index
// MMA: %[[UNITS:.*]] = arith.select %{{.*}}, %c0{{.*}}, %[[SPAN]] : index
// MMA: arith.cmpi ne, %[[START]], %[[BASE]] : index
// MMA: %[[INNER:.*]] = arith.minui %{{.*}}, %[[UNITS]] : index
// MMA: %[[PAGED:.*]] = arith.minui %[[END]], %{{.*}} : index
// MMA: arith.cmpi ugt, %[[PAGED]], %[[BASE]] : index
// MMA: %[[INNEREND:.*]] = arith.minui %{{.*}}, %[[UNITS]] : index
// MMA: %[[OUTER:.*]] = arith.subi %[[UNITS]], %[[INNEREND]] : index
// MMA: %[[EDGES:.*]] = arith.addi %[[INNER]], %[[OUTER]] : index
// MMA: scf.for %[[EDGE:.*]] = %[[WARP]] to %[[EDGES]] step %c4
// MMA: arith.cmpi ult, %[[EDGE]], %[[INNER]] : index
// An edge unit in pages or in the residual buffer: the part's products
// behind a branch that merges only the three sums. In pages, lane group g
// reads tokens 4g .. 4g + 3 of the unit (rows g and g + 8 of tile m:
// tokens 4g + 2m and 4g + 2m + 1): of a channel pair, one byte of each
// half of stored word g / 2 (the page's channel pairing), one 4-byte load
// a channel pair, shifted by 8 * (g % 2) to bits 0 .. 7, its four pairs
// read in place as fp16 subnormals (an AND at bits 0, 2, 4 and 6,
// exponent 0: code * 2^(bit - 24); no power to subtract, no fma); the
// pair's scales (elements 0, 1) and zeros (2, 3) straight from the
// 16-byte load: the scales multiply the query registers, and the zero mma
// takes (scale, zero, scale, zero) as loaded. Residual units: fp16 rows
// times the queries, two mma a k-step, their sums weighed as the
// subnormal codes' (tile 0's rows 2^-24 and 2^-22, tile 1's 2^-20 and
// 2^-18).
// MMA: scf.if %{{.*}} -> (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>) {
// MMA: %[[BYTE:.*]] = arith.remui %{{.*}}, %c8{{.*}} : index
// MMA-NEXT: %c2{{.*}} = arith.constant 2 : index
// MMA-NEXT: %[[BITS:.*]] = arith.muli %[[BYTE]], %c2{{.*}} : index
// MMA-NEXT: %[[LANESHIFT:.*]] = arith.index_cast %[[BITS]] : index to i32
// MMA: %[[PARAMS:.*]] = llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xf16>
// MMA: %[[SCALE:.*]] = llvm.shufflevector %[[PARAMS]], %[[PARAMS]] [0, 1]
// MMA: %[[ZERO:.*]] = llvm.shufflevector %[[PARAMS]], %[[PARAMS]] [2, 3]
// MMA: %[[LOADED:.*]] = llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> i32
// MMA-NEXT: %[[WORD:.*]] = arith.shrui %[[LOADED]], %[[LANESHIFT]] : i32
// MMA: %[[CODES:.*]] = arith.andi %[[WORD]], %c196611_i32 : i32
// MMA-NEXT: %[[EXACT:.*]] = llvm.bitcast %[[CODES]] : i32 to vector<2xf16>
// MMA-NOT: arith.subf
// MMA-NOT: llvm.intr.fma
// MMA: arith.andi %[[WORD]], %c786444_i32{{.*}} : i32
// MMA: arith.andi %[[WORD]], %c3145776_i32{{.*}} : i32
// MMA: arith.andi %[[WORD]], %c12583104_i32{{.*}} : i32
// MMA-NOT: arith.shrui
// MMA: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> i32
// MMA-NEXT: arith.shrui %{{.*}}, %[[LANESHIFT]] : i32
// MMA-COUNT-6: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> i32
// MMA-NOT: vector<2xi32>
// MMA-NOT: llvm.shufflevector %{{.*}}, %{{.*}} [0, 2] : vector<2xf16>
// MMA-NOT: llvm.intr.fma
// MMA: %[[Q0:.*]] = memref.load %{{.*}} : memref<4x32x2xvector<2xf16>, #gpu.address_space<workgroup>>
// MMA: %[[Q1:.*]] = memref.load %{{.*}} : memref<4x32x2xvector<2xf16>, #gpu.address_space<workgroup>>
// MMA: arith.mulf %[[Q0]], %[[SCALE]] : vector<2xf16>
// MMA: arith.mulf %[[Q1]], %{{.*}} : vector<2xf16>
// MMA: vector.insert %[[EXACT]], %{{.*}} [0] : vector<2xf16> into vector<4x2xf16>
// MMA-COUNT-2: nvgpu.mma.sync({{.*}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// MMA: vector.insert %[[SCALE]], %{{.*}} [0] : vector<2xf16> into vector<4x2xf16>
// MMA-NEXT: vector.insert %[[ZERO]], %{{.*}} [1] : vector<2xf16> into vector<4x2xf16>
// MMA-COUNT-10: nvgpu.mma.sync({{.*}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// MMA-NOT: nvgpu.mma.sync
// MMA: } else {
// MMA-NOT: arith.mulf
// MMA: llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xf16>
// MMA-COUNT-8: nvgpu.mma.sync({{.*}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// MMA-NOT: nvgpu.mma.sync
// MMA: %[[W0:.*]] = arith.constant dense<{{\[}}[5.96046448E-8, 5.96046448E-8], [2.38418579E-7, 2.38418579E-7]]> : vector<2x2xf32>
// MMA-NEXT: %[[R0:.*]] = arith.mulf %{{.*}}, %[[W0]] : vector<2x2xf32>
// MMA-NEXT: %[[T0:.*]] = arith.addf %{{.*}}, %[[R0]] : vector<2x2xf32>
// MMA-NEXT: %[[W1:.*]] = arith.constant dense<{{\[}}[9.53674316E-7, 9.53674316E-7], [3.81469727E-6, 3.81469727E-6]]> : vector<2x2xf32>
// MMA-NEXT: %[[R1:.*]] = arith.mulf %{{.*}}, %[[W1]] : vector<2x2xf32>
// MMA-NEXT: %[[T1:.*]] = arith.addf %{{.*}}, %[[R1]] : vector<2x2xf32>
// MMA-NEXT: scf.yield %[[T0]], %[[T1]], %{{.*}} : vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>
// The scores: the zeros' sums (rows g + 8) scaled once a unit as the
// scores are (scale 1/8 times the queries' 4: 0.5), then each tile-0 score
// is its sum times 0.5 * 2^24 plus that, one fma.
// MMA: %[[FACTOR:.*]] = arith.constant 5.000000e-01 : f32
// MMA-NEXT: %[[ZEROSUM:.*]] = vector.extract %[[SUMS:.*]]#2[1, 0] : f32 from vector<2x2xf32>
// MMA-NEXT: %[[ZEROS:.*]] = arith.mulf %[[ZEROSUM]], %[[FACTOR]] : f32
// MMA: arith.cmpi uge, %{{.*}}, %[[START]] : index
// MMA: %[[DOT:.*]] = vector.extract %[[SUMS]]#0[0, 0] : f32 from vector<2x2xf32>
// MMA-NEXT: %[[UNWEIGH:.*]] = arith.constant 0x4B000000 : f32
// MMA-NEXT: %[[SCORE:.*]] = llvm.intr.fma(%[[DOT]], %[[UNWEIGH]], %[[ZEROS]]) : (f32, f32, f32) -> f32
// MMA-NEXT: scf.if
// MMA: memref.store %[[SCORE]], %{{.*}} : memref<4x512xf32, #gpu.address_space<workgroup>>
// MMA: %[[LAST:.*]] = arith.muli %[[INNEREND]], %c32{{.*}} : index
// MMA: %[[STOP:.*]] = arith.addi %[[BASE]], %[[LAST]] : index
// MMA: scf.for %{{.*}} = %{{.*}} to %[[STOP]] step %c128
// MMA-NOT: scf.if %{{.*}} ->
// MMA: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> i32
// MMA-NOT: scf.if %{{.*}} ->
// MMA: llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xf16>
// MMA-COUNT-2: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> i32
// MMA-NOT: scf.if %{{.*}} ->
// MMA: arith.andi %{{.*}}, %c196611_i32{{.*}} : i32
// MMA-NOT: scf.if %{{.*}} ->
// MMA-COUNT-12: nvgpu.mma.sync({{.*}}) {mmaShape = [16, 8, 16]}
// MMA-NOT: arith.cmpi uge
// MMA: %[[HEADOK:.*]] = arith.cmpi ult, %{{.*}}, %c4{{.*}} : index
// MMA-NEXT: vector.extract %{{.*}}[0, 0] : f32 from vector<2x2xf32>
// MMA-NEXT: arith.constant 0x4B000000 : f32
// MMA-NEXT: llvm.intr.fma
// MMA-NEXT: scf.if %[[HEADOK]] {
// MMA: memref.store %{{.*}} : memref<4x512xf32, #gpu.address_space<workgroup>>
// MMA: gpu.shuffle  xor
// MMA: gpu.func @attend0_combine
// value-product=mma: the maxima and sums go to the workspace first; then
// a warp per tile of 8 tokens (tiles warp, warp + 4, ..., aligned to the
// sequence from the one holding the split's first token) keeps D/16 = 4
// accumulator tiles; with 4 query heads a KV head, B's columns 0..3 take
// the heads' weights cut to fp16 (hi) and columns 4..7 the rest (w - hi,
// rounded: lo), split by the softmax, so lane (g, t) takes head g mod 4's
// weights of tokens 2t and 2t + 1 (zeros past the group and outside the
// split), hi for g < 4 and lo for g >= 4, reads channels 8g .. 8g+7 (its
// slab) of both tokens as fp16 pairs of one channel of the two tokens
// and sums v * w with one mma.sync.m16n8k8 per channel tile;
// lanes t and t + 2 add their hi and lo sums with one shuffle; the warps'
// sums meet in shared memory (4 warps x 4 heads x 64 channels; tile j's
// rows g and g + 8 are channels 8g + j and 8g + j + 4, the pairs' order)
// and each thread adds up (head, channel) totals for the workspace.
// VMMA-LABEL: gpu.func @attend0_split0
// VMMA-SAME: %{{.*}} : memref<4x4x64xf32, #gpu.address_space<workgroup>>)
// The softmax splits each weight once, times 2^14 (so that the parts of
// all but the smallest weights are fp16 normals), into hi = w * 2^14 with
// its mantissa cut to fp16's 10 bits (mask 0xFFFFE000) and lo = fp16(w *
// 2^14 - hi), one fp16 pair stored in the weight's f32 slot; the sums add
// w.
// VMMA: %[[TWO14:.*]] = arith.constant 1.638400e+04 : f32
// VMMA: %[[WEIGHT:.*]] = math.exp
// VMMA-NEXT: %[[SCALED:.*]] = arith.mulf %[[WEIGHT]], %[[TWO14]] : f32
// VMMA: %[[BITS:.*]] = arith.bitcast %[[SCALED]] : f32 to i32
// VMMA: %[[CUT:.*]] = arith.andi %[[BITS]], %c-8192_i32 : i32
// VMMA: %[[HI:.*]] = arith.bitcast %[[CUT]] : i32 to f32
// VMMA: %[[REST:.*]] = arith.subf %[[SCALED]], %[[HI]] : f32
// VMMA: %[[PAIR:.*]] = vector.from_elements %[[HI]], %[[REST]] : vector<2xf32>
// VMMA: %[[HALVES:.*]] = arith.truncf %[[PAIR]] : vector<2xf32> to vector<2xf16>
// VMMA: %[[PACKED:.*]] = llvm.bitcast %[[HALVES]] : vector<2xf16> to f32
// VMMA: memref.store %[[PACKED]], %{{.*}} : memref<4x512xf32, #gpu.address_space<workgroup>>
// VMMA: arith.addf %{{.*}}, %[[WEIGHT]] : f32
// VMMA: arith.cmpi eq, %thread_id_x, %c0
// VMMA-COUNT-8: llvm.store %{{.*}} {alignment = 4 : i64} : f32, !llvm.ptr<1>
// VMMA: %[[WARP:.*]] = arith.divui %thread_id_x{{.*}}, %c32{{.*}} : index
// VMMA: %[[G:.*]] = arith.divui %{{.*}}, %c4{{.*}} : index
// VMMA: %[[HEAD:.*]] = arith.remui %[[G]], %c4{{.*}} : index
// VMMA: %[[ROW:.*]] = arith.minui %[[HEAD]], %c3{{.*}} : index
// VMMA: %[[LOCOLUMN:.*]] = arith.cmpi uge, %[[G]], %c4{{.*}} : index
// VMMA: %[[SELECTOR:.*]] = arith.select %[[LOCOLUMN]], %c30258_i32{{.*}}, %c21520_i32{{.*}} : i32
// VMMA: %[[MISALIGN:.*]] = arith.remui %[[START:[0-9]+]], %c8{{.*}} : index
// VMMA: %[[BASE:.*]] = arith.subi %[[START]], %[[MISALIGN]] : index
// VMMA: %[[END:.*]] = arith.addi %[[START]], %{{.*}} : index
// VMMA: %[[SPAN:.*]] = arith.ceildivui %{{.*}}, %c8{{.*}} : index
// VMMA: %[[TILES:.*]] = arith.select %{{.*}}, %c0{{.*}}, %[[SPAN]] : index
// VMMA: %[[BMISALIGN:.*]] = arith.remui %[[START]], %c16{{.*}} : index
// VMMA: %[[BBASE:.*]] = arith.subi %[[START]], %[[BMISALIGN]] : index
// VMMA: %[[BSPAN:.*]] = arith.ceildivui %{{.*}}, %c16{{.*}} : index
// VMMA: %[[BLOCKS:.*]] = arith.select %{{.*}}, %c0{{.*}}, %[[BSPAN]] : index
// VMMA: arith.cmpi ne, %[[START]], %[[BBASE]] : index
// VMMA: %[[INNER:.*]] = arith.minui %{{.*}}, %[[BLOCKS]] : index
// VMMA: %[[PAGED:.*]] = arith.minui %[[END]], %{{.*}} : index
// VMMA: arith.cmpi ugt, %[[PAGED]], %[[BBASE]] : index
// VMMA: %[[INNEREND:.*]] = arith.minui %{{.*}}, %[[BLOCKS]] : index
// The 16-token blocks wholly in the split and in pages first, two tiles an
// iteration: their page located once (one page-table load) for the four
// tokens, no branch before the first tile, weights without bounds. The
// slab's eight 2-bit codes are one 2-byte load, its high byte moved 16 bits
// above the low one; pair k = codes (k, k + 4), at bits 2k and 2k + 16,
// ORed in place (no shift) into the mantissas of 2^(10 - 2k) under the mask
// 0x00030003 << 2k (one lop3; 0x6400 is 1024.0, 0x5C00 256.0), that power
// subtracted, one fp16 fma with the (scale, zero) pair. The second tile sits behind a
// branch on the block being in pages (so ptxas keeps its loads after the
// first tile's products).
// VMMA: %[[FIRST:.*]] = arith.addi %[[INNER]], %[[WARP]] : index
// VMMA: %[[SUMS:.*]]:4 = scf.for %[[BLOCK:.*]] = %[[FIRST]] to %[[INNEREND]] step %c4{{.*}} iter_args({{.*}}) -> (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>) {
// VMMA: %[[BLOCKOFFSET:.*]] = arith.muli %[[BLOCK]], %c16{{.*}} : index
// VMMA: %[[BLOCKTOKEN:.*]] = arith.addi %[[BBASE]], %[[BLOCKOFFSET]] : index
// VMMA-NOT: scf.if
// VMMA: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> i32
// VMMA-NOT: scf.if
// B: the two tokens' packed weights, hi parts (selector 0x5410) or lo
// parts (0x7632) of both by one prmt; no bounds, no split.
// VMMA: %[[W0:.*]] = memref.load %{{.*}}[%[[ROW]], %{{.*}}] : memref<4x512xf32, #gpu.address_space<workgroup>>
// VMMA: %[[W0I:.*]] = arith.bitcast %[[W0]] : f32 to i32
// VMMA: %[[W1:.*]] = memref.load %{{.*}}[%[[ROW]], %{{.*}}] : memref<4x512xf32, #gpu.address_space<workgroup>>
// VMMA: %[[W1I:.*]] = arith.bitcast %[[W1]] : f32 to i32
// VMMA: %[[PICKED:.*]] = nvvm.prmt <default> %[[SELECTOR]], %[[W0I]], %[[W1I]] : i32
// VMMA: %[[PART:.*]] = llvm.bitcast %[[PICKED]] : i32 to vector<2xf16>
// VMMA: %[[B:.*]] = vector.from_elements %{{.*}}, %{{.*}} : vector<1x2xf16>
// VMMA-NOT: scf.if
// An interior tile's two tokens are read together: each token's 8 codes
// (a half word, spread so that code i + 4 sits 16 bits above code i) and
// (scale, zero); the two tokens' scales and zeros permuted into one pair
// each, their code words into one of low halves and one of high halves
// (PRMT 0x5410 and 0x7632), so each dequantized pair is one channel of
// both tokens: an A register as it is, no shuffle.
// VMMA-NOT: -> i32
// VMMA: llvm.load %{{.*}} {alignment = 2 : i64} : !llvm.ptr<1> -> i16
// VMMA: %[[W0:.*]] = arith.ori %{{.*}}, %{{.*}} : i32
// VMMA: %[[P0:.*]] = llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> vector<2xf16>
// VMMA: llvm.load %{{.*}} {alignment = 2 : i64} : !llvm.ptr<1> -> i16
// VMMA: %[[W1:.*]] = arith.ori %{{.*}}, %{{.*}} : i32
// VMMA: %[[P1:.*]] = llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> vector<2xf16>
// VMMA: %[[P1W:.*]] = llvm.bitcast %[[P1]] : vector<2xf16> to i32
// VMMA: %[[P0W:.*]] = llvm.bitcast %[[P0]] : vector<2xf16> to i32
// VMMA: %[[SCALES:.*]] = nvvm.prmt <default> %c21520_i32{{.*}}, %[[P0W]], %[[P1W]] : i32
// VMMA: %[[SCALE:.*]] = llvm.bitcast %[[SCALES]] : i32 to vector<2xf16>
// VMMA: %[[ZEROS:.*]] = nvvm.prmt <default> %c30258_i32{{.*}}, %{{.*}}, %{{.*}} : i32
// VMMA: %[[ZERO:.*]] = llvm.bitcast %[[ZEROS]] : i32 to vector<2xf16>
// VMMA: %[[LOWS:.*]] = nvvm.prmt <default> %c21520_i32{{.*}}, %[[W0]], %[[W1]] : i32
// VMMA: %[[HIGHS:.*]] = nvvm.prmt <default> %c30258_i32{{.*}}, %[[W0]], %[[W1]] : i32
// VMMA: %[[MASKED:.*]] = llvm.inline_asm "lop3.b32 $0, $1, $2, $3, 0xEA;", "=r,r,n,n" %[[LOWS]], %c196611_i32, %c1677747200_i32
// VMMA: %[[CODES:.*]] = llvm.bitcast %[[MASKED]] : i32 to vector<2xf16>
// VMMA: %[[EXACT:.*]] = arith.subf %[[CODES]], %{{.*}} : vector<2xf16>
// VMMA: %[[FIRSTPAIR:.*]] = llvm.intr.fma(%[[EXACT]], %[[SCALE]], %[[ZERO]]) : (vector<2xf16>, vector<2xf16>, vector<2xf16>) -> vector<2xf16>
// VMMA-NOT: arith.shrui
// VMMA: llvm.inline_asm "lop3.b32 $0, $1, $2, $3, 0xEA;", "=r,r,n,n" %[[LOWS]], %c786444_i32, %c1543527424_i32
// VMMA: arith.subf %{{.*}}, %cst{{.*}} : vector<2xf16>
// VMMA: llvm.intr.fma
// VMMA-COUNT-2: llvm.intr.fma
// VMMA: llvm.inline_asm "lop3.b32 $0, $1, $2, $3, 0xEA;", "=r,r,n,n" %[[HIGHS]], %c196611_i32{{.*}}, %c1677747200_i32
// VMMA: %[[SECONDPAIR:.*]] = llvm.intr.fma
// VMMA-COUNT-3: llvm.intr.fma
// VMMA-NOT: scf.if
// VMMA-NOT: vector.shuffle
// VMMA: %[[A0:.*]] = vector.insert %[[FIRSTPAIR]], %{{.*}} [0] : vector<2xf16> into vector<2x2xf16>
// VMMA: %[[A:.*]] = vector.insert %[[SECONDPAIR]], %[[A0]] [1] : vector<2xf16> into vector<2x2xf16>
// VMMA: nvgpu.mma.sync(%[[A]], %[[B]], %{{.*}}) {mmaShape = [16, 8, 8]} : (vector<2x2xf16>, vector<1x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// VMMA-COUNT-3: nvgpu.mma.sync
// VMMA: %[[INPAGES:.*]] = arith.cmpi ult, %[[BLOCKTOKEN]], %{{.*}} : index
// VMMA: scf.if %[[INPAGES]] -> (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>) {
// VMMA-NOT: -> i32
// VMMA: llvm.load %{{.*}} {alignment = 2 : i64} : !llvm.ptr<1> -> i16
// VMMA-COUNT-4: nvgpu.mma.sync({{.*}}) {mmaShape = [16, 8, 8]}
// VMMA: } else {
// The other tiles then, each token read on its own (pages or a residual
// row: one 16-byte load shuffled into the same order; zeros outside the
// split).
// VMMA: %[[EDGEFIRST:.*]] = arith.minui %{{.*}}, %[[TILES]] : index
// VMMA: %[[EDGEREST:.*]] = arith.minui %{{.*}}, %[[TILES]] : index
// VMMA: %[[OUTER:.*]] = arith.subi %[[TILES]], %[[EDGEREST]] : index
// VMMA: %[[EDGES:.*]] = arith.addi %[[EDGEFIRST]], %[[OUTER]] : index
// VMMA: scf.for %[[EDGE:.*]] = %[[WARP]] to %[[EDGES]] step %c4{{.*}} iter_args(%{{.*}} = %[[SUMS]]#0, %{{.*}} = %[[SUMS]]#1, %{{.*}} = %[[SUMS]]#2, %{{.*}} = %[[SUMS]]#3)
// VMMA: arith.cmpi ult, %[[EDGE]], %[[EDGEFIRST]] : index
// An edge tile's weights: zero for a token outside the split.
// VMMA: %[[INSPLIT:.*]] = arith.cmpi ult, %{{.*}}, %{{.*}} : index
// VMMA: %[[AT:.*]] = arith.select %[[INSPLIT]], %{{.*}}, %c0{{.*}} : index
// VMMA: %[[EW:.*]] = memref.load %{{.*}}[%[[ROW]], %[[AT]]] : memref<4x512xf32, #gpu.address_space<workgroup>>
// VMMA: %[[EWI:.*]] = arith.bitcast %[[EW]] : f32 to i32
// VMMA: %[[EW0:.*]] = arith.select %[[INSPLIT]], %[[EWI]], %c0_i32{{.*}} : i32
// VMMA: arith.bitcast %{{.*}} : f32 to i32
// VMMA: %[[EW1:.*]] = arith.select %{{.*}}, %{{.*}}, %c0_i32{{.*}} : i32
// VMMA: nvvm.prmt <default> %[[SELECTOR]], %[[EW0]], %[[EW1]] : i32
// VMMA: scf.if %{{.*}} -> (vector<2xf16>, vector<2xf16>, vector<2xf16>, vector<2xf16>) {
// VMMA: scf.if %{{.*}} -> (vector<2xf16>, vector<2xf16>, vector<2xf16>, vector<2xf16>) {
// VMMA: } else {
// VMMA: %[[RESIDUAL:.*]] = llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xf16>
// VMMA: llvm.shufflevector %[[RESIDUAL]], %[[RESIDUAL]] [0, 4] : vector<8xf16>
// VMMA: llvm.shufflevector %[[RESIDUAL]], %[[RESIDUAL]] [3, 7] : vector<8xf16>
// VMMA-COUNT-4: nvgpu.mma.sync({{.*}}) {mmaShape = [16, 8, 8]}
// VMMA: %[[SUM:.*]] = vector.extract %{{.*}}[0, 0] : f32 from vector<2x2xf32>
// VMMA: %[[PARTNER:.*]], %{{.*}} = gpu.shuffle  xor %[[SUM]], %c2_i32{{.*}}, %c32_i32{{.*}} : f32
// VMMA: %[[TOTAL:.*]] = arith.addf %[[SUM]], %[[PARTNER]] : f32
// The weights' 2^14 divided out: one multiply an output.
// VMMA-NEXT: %[[UNSCALE:.*]] = arith.constant 6.10351563E-5 : f32
// VMMA-NEXT: %[[OUT:.*]] = arith.mulf %[[TOTAL]], %[[UNSCALE]] : f32
// VMMA: memref.store %[[OUT]], %{{.*}}[%[[WARP]], %{{.*}}, %{{.*}}] : memref<4x4x64xf32, #gpu.address_space<workgroup>>
// VMMA: gpu.barrier
// VMMA: scf.for %{{.*}} = %thread_id_x{{.*}} to %c256{{.*}} step %c128
// VMMA-COUNT-4: memref.load %{{.*}} : memref<4x4x64xf32, #gpu.address_space<workgroup>>
// VMMA: llvm.store %{{.*}} {alignment = 4 : i64} : f32, !llvm.ptr<1>
// VMMA-NOT: gpu.shuffle
// VMMA: gpu.return
// CHECK: %[[LANE:.*]] = arith.remui %thread_id_x, %c8
// CHECK: scf.for %{{.*}} = %[[LANE]] to %{{.*}} step %c8{{.*}} iter_args({{.*}}) -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32) {
// CHECK: scf.if
// CHECK: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> i32
// CHECK: %[[WORD:.*]] = llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> i32
// CHECK: arith.shrui %[[WORD]]
// CHECK: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> vector<2xf16>
// CHECK: } else {
// CHECK: llvm.load %{{.*}} {alignment = 8 : i64} : !llvm.ptr<1> -> vector<4xf16>
// The weighted values accumulate as fmas (one operation per element and
// query head).
// CHECK: math.fma
// CHECK-NOT: gpu.shuffle  xor %{{.*}}, %c8_i32
// CHECK: gpu.shuffle  xor %{{.*}}, %c4_i32
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32
// CHECK: arith.cmpi eq, %[[LANE]], %c0
// CHECK: llvm.store %{{.*}} {alignment = 4 : i64} : f32, !llvm.ptr<1>
// CHECK-NOT: gpu.barrier
// CHECK: gpu.return
// The combine kernel: 128 threads take the splits' maxima a split each
// (a block reduction: one barrier, its scratch not written again), its 4
// warps the weighted partial outputs a split each (head_dim 64: 2 channels
// a lane, one 8-byte load), and the warps' sums meet in shared memory;
// NaN for a layout mismatch.
// CHECK: gpu.func @attend0_combine(%{{.*}}: !llvm.ptr, %{{.*}}: memref<4x8x1x64xf32>, %{{.*}}: index, %{{.*}}: i32) workgroup(%[[OUTS:.*]] : memref<4x64xf32, #gpu.address_space<workgroup>>, %[[SUMS:.*]] : memref<4xf32, #gpu.address_space<workgroup>>, %[[MAXIMA:.*]] : memref<4xf32, #gpu.address_space<workgroup>>) kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK: %[[TID:.*]] = gpu.thread_id  x
// CHECK: scf.for %{{.*}} = %[[TID]] to %{{.*}} step %c128
// CHECK: arith.maximumf
// CHECK: gpu.shuffle  xor
// CHECK: gpu.barrier
// CHECK: memref.load %[[MAXIMA]]
// CHECK-NOT: gpu.barrier
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c4
// CHECK: math.exp
// CHECK: llvm.load %{{.*}} {alignment = 8 : i64} : !llvm.ptr<1> -> vector<2xf32>
// CHECK: memref.store %{{.*}}, %[[OUTS]]
// CHECK: memref.store %{{.*}}, %[[SUMS]]
// CHECK: gpu.barrier
// CHECK: %[[ROWS:.*]] = memref.collapse_shape %{{.*}} {{\[\[}}0, 1, 2], [3]] : memref<4x8x1x64xf32> into memref<32x64xf32>
// CHECK: scf.for %{{.*}} = %{{.*}} to %c64 step %c128
// CHECK: arith.divf
// CHECK: memref.store %{{.*}}, %[[ROWS]][%{{.*}}, %{{.*}}] : memref<32x64xf32>
// CHECK: 0x7FC00000
func.func @decode(%cache: !kvc.cache<4x2x?x64xf16, #kivi2>, %q: tensor<4x8x1x64xf32>) -> tensor<4x8x1x64xf32> {
  %o = kvc.attend %q, %cache : tensor<4x8x1x64xf32>, !kvc.cache<4x2x?x64xf16, #kivi2> -> tensor<4x8x1x64xf32>
  return %o : tensor<4x8x1x64xf32>
}

// -----
// Per-KV-head encodings: one split kernel per run of heads with the same
// encoding, launched over that run's heads from its first head; fp8 keys
// decode through a table in the kernel module. A sliding window and a
// softcap are applied in the kernel.
#h0 = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>,
                    value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 64>
#h12 = #kvc.encoding<key = #kvc.fp8<e4m3>,
                     value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 64>
// CHECK-LABEL: func.func @per_head
// CHECK: gpu.launch_func async [%{{.*}}] @kvc_kernels::@attend0_split0 blocks in (%{{.*}}, %c1{{.*}}, %c1{{.*}}) {{.*}} %c0{{.*}} : index)
// CHECK: gpu.launch_func async [%{{.*}}] @kvc_kernels::@attend0_split1 blocks in (%{{.*}}, %c2{{.*}}, %c1{{.*}}) {{.*}} %c1{{.*}} : index)
// CHECK: gpu.launch_func async [%{{.*}}] @kvc_kernels::@attend0_combine
// CHECK: gpu.module @kvc_kernels
// CHECK: memref.global "private" constant @kvc_fp8_e4m3_table : memref<256xf32>
// CHECK: gpu.func @attend0_split0
// CHECK-NOT: kvc_fp8_e4m3_table
// CHECK: gpu.func @attend0_split1
// CHECK: memref.get_global @kvc_fp8_e4m3_table
// CHECK: math.tanh
func.func @per_head(%cache: !kvc.cache<1x3x?x64xf16, #h0> {kvc.head_encodings = [#h0, #h12, #h12]},
                    %q: tensor<1x6x1x64xf16>) -> tensor<1x6x1x64xf16> {
  %o = kvc.attend %q, %cache {window = 256 : i64, softcap = 30.0 : f32} : tensor<1x6x1x64xf16>, !kvc.cache<1x3x?x64xf16, #h0> -> tensor<1x6x1x64xf16>
  return %o : tensor<1x6x1x64xf16>
}

// -----
// More spans than threads: head_dim 512 at GQA 1 is 64 spans of 8 channels;
// 32 threads take two each (spans tid and tid + 32), one token lane, so no
// shuffles; 128 threads take one each with two token lanes.
#wide = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                      value = #kvc.quant<bits = 4, axis = token, group = 32>, residual = 64>
// CHECK-LABEL: func.func @wide_head
// CHECK: gpu.func @attend0_split0(%{{.*}}: memref<2x1x1x512xf32>
// CHECK: %[[LANE:.*]] = arith.remui %thread_id_x, %c2
// CHECK: scf.for %{{.*}} = %[[LANE]] to %{{.*}} step %c2{{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32) {
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32
// THREADS32-LABEL: func.func @wide_head
// THREADS32: gpu.func @attend0_split0(%{{.*}}: memref<2x1x1x512xf32>
// THREADS32: %[[LANE:.*]] = arith.remui %thread_id_x, %c1
// THREADS32: scf.for %{{.*}} = %[[LANE]] to %{{.*}} step %c1{{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32) {
// THREADS32: %[[SECOND:.*]] = arith.addi %{{.*}}, %c32
// THREADS32: arith.muli %[[SECOND]], %c8
// THREADS32: scf.for %{{.*}} = %[[LANE]] to %{{.*}} step %c1{{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32) {
// THREADS32-NOT: gpu.shuffle  xor %{{.*}}, %c1_i32
// THREADS32: gpu.return
// The tensor-core key and value passes take head_dim 64 and 128 only.
// VMMA-ERR: kvc-lower-to-gpu.mlir:[[@LINE+3]]:8: error: 'kvc.attend' op kvc-lower-to-gpu: value-product=mma has no kernel for head_dim 512 (the tensor-core value pass takes 64 or 128); use value-product=fma
// MMA-ERR: kvc-lower-to-gpu.mlir:[[@LINE+2]]:8: error: 'kvc.attend' op kvc-lower-to-gpu: key-product=mma has no kernel for head_dim 512 (the tensor-core key pass takes 64 or 128); use key-product=fma
func.func @wide_head(%cache: !kvc.cache<2x1x?x512xf16, #wide>, %q: tensor<2x1x1x512xf32>) -> tensor<2x1x1x512xf32> {
  %o = kvc.attend %q, %cache : tensor<2x1x1x512xf32>, !kvc.cache<2x1x?x512xf16, #wide> -> tensor<2x1x1x512xf32>
  return %o : tensor<2x1x1x512xf32>
}

// -----
// kvc.quantize: a kernel with a thread per group (512 channel-axis groups:
// 4 blocks of 128), the group found from the thread's global index (channel
// fastest, so a warp's loads are adjacent), quantized by the CPU lowering's
// GroupQuantizer (min/max loop, fp16 scale and zero, codes, packed words
// stored as bytes). The results become buffers the launch writes.
// CHECK-LABEL: func.func @quantize_keys
// CHECK: %[[X:.*]] = bufferization.to_buffer %arg0 read_only : tensor<2x64x128xf16> to memref<2x64x128xf16>
// CHECK: %[[CODES:.*]] = memref.alloc() : memref<2x2x128x8xi8>
// Not on a cache: a synchronous launch (a stream of its own) and no other
// wait.
// CHECK-NOT: kvc_rt_mlir_gpu_synchronize
// CHECK: gpu.launch_func @kvc_kernels::@quantize0 blocks in (%c4{{.*}}, %c1{{.*}}, %c1{{.*}}) threads in (%c128{{.*}}, %c1{{.*}}, %c1{{.*}}) args(%[[X]] : memref<2x64x128xf16>, %[[CODES]] : memref<2x2x128x8xi8>, %{{.*}} : memref<2x2x128xf16>, %{{.*}} : memref<2x2x128xf16>)
// CHECK-NOT: kvc_rt_mlir_gpu_synchronize
// CHECK: bufferization.to_tensor %[[CODES]]
// CHECK: gpu.func @quantize0(%[[IN:.*]]: memref<2x64x128xf16>, %[[C:.*]]: memref<2x2x128x8xi8>, %[[S:.*]]: memref<2x2x128xf16>, %[[Z:.*]]: memref<2x2x128xf16>) kernel attributes {known_block_size = array<i32: 128, 1, 1>, nvvm.minctasm = 5 : i32}
// CHECK: %[[GROUP:.*]] = arith.addi %{{.*}}, %thread_id_x : index
// CHECK: %[[IN_RANGE:.*]] = arith.cmpi ult, %[[GROUP]], %c512 : index
// CHECK: scf.if %[[IN_RANGE]] {
// CHECK: %[[CHANNEL:.*]] = arith.remui %[[GROUP]], %c128{{.*}} : index
// CHECK: scf.for {{.*}} -> (f32, f32, i1)
// CHECK: memref.load %[[IN]][%{{.*}}, %{{.*}}, %[[CHANNEL]]] : memref<2x64x128xf16>
// CHECK: arith.truncf %{{.*}} : f32 to f16
// CHECK: arith.fptoui %{{.*}} : f32 to i32
// CHECK: memref.store %{{.*}}, %[[C]][%{{.*}}, %{{.*}}, %[[CHANNEL]], %{{.*}}] : memref<2x2x128x8xi8>
// CHECK: memref.store %{{.*}}, %[[S]][%{{.*}}, %{{.*}}, %[[CHANNEL]]] : memref<2x2x128xf16>
// CHECK: gpu.return
func.func @quantize_keys(%x: tensor<2x64x128xf16>) -> (tensor<2x2x128x8xi8>, tensor<2x2x128xf16>, tensor<2x2x128xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 2, axis = channel, group = 32> : tensor<2x64x128xf16> -> tensor<2x2x128x8xi8>, tensor<2x2x128xf16>, tensor<2x2x128xf16>
  return %c, %s, %z : tensor<2x2x128x8xi8>, tensor<2x2x128xf16>, tensor<2x2x128xf16>
}

// -----
// kvc.append: the runtime reserves the token (after the layout checks), then
// a kernel per run of KV heads with one encoding, grid (heads of the run,
// batch, 2: keys then values), writes it: its threads share the flush's
// groups (2-bit channel-axis keys: a group of 32 tokens of a channel; 4-bit
// token-axis values: 32 channels of a token), each quantized by
// GroupQuantizer into a live page (entry >= 0) and stored as words through
// global pointers, then meet at a barrier (the flush reads the staged rows
// the staging overwrites), then share the new rows' fp16 elements.
#kivi = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                      value = #kvc.quant<bits = 4, axis = token, group = 32>,
                      residual = 64>
// CHECK-LABEL: func.func @append_step
// CHECK: %[[ASTREAM:.*]] = call @kvc_rt_mlir_gpu_stream(%arg0,
// CHECK: %[[ATOKEN:.*]] = builtin.unrealized_conversion_cast %[[ASTREAM]]
// CHECK: call @kvc_rt_mlir_gpu_check_layout
// CHECK: %[[REC:.*]] = func.call @kvc_rt_mlir_reserve_append(%arg0, %{{.*}}) : (!llvm.ptr, i64) -> !llvm.ptr
// CHECK: %[[RESERVED:.*]] = llvm.icmp "ne" %[[REC]]
// CHECK: scf.if %[[RESERVED]] {
// CHECK: %[[KPOOL:.*]] = func.call @kvc_rt_mlir_pool(%arg0, %c0_i32
// CHECK: %[[VPOOL:.*]] = func.call @kvc_rt_mlir_pool(%arg0, %c1_i32
// CHECK: gpu.launch_func async [%[[ATOKEN]]] @kvc_kernels::@append0_run0 blocks in (%c2{{.*}}, %c3{{.*}}, %c2{{.*}}) threads in (%c128{{.*}}, %c1{{.*}}, %c1{{.*}}) args(%[[REC]] : !llvm.ptr, %[[KPOOL]] : !llvm.ptr, %[[VPOOL]] : !llvm.ptr, %{{.*}} : memref<3x2x1x64xf32>, %{{.*}} : memref<3x2x1x64xf32>)
// The attention waits for the append on the device (same cache, same
// stream: the runtime sees that), one host wait at the end.
// CHECK-NOT: kvc_rt_mlir_gpu_synchronize
// CHECK: call @kvc_rt_mlir_gpu_stream(%arg0, %[[ASTREAM]])
// CHECK-NOT: kvc_rt_mlir_gpu_synchronize
// CHECK: gpu.launch_func async [%{{.*}}] @kvc_kernels::@attend1_split0
// CHECK: call @kvc_rt_mlir_gpu_synchronize(%arg0)
// CHECK-NEXT: return
// With wait-on-return=false the function returns with its kernels enqueued
// on the cache's stream: the caller synchronizes.
// NOWAIT-LABEL: func.func @append_step
// NOWAIT: gpu.launch_func async {{.*}}@append{{[0-9]+}}_run0
// NOWAIT: gpu.launch_func async {{.*}}@attend{{[0-9]+}}_combine
// NOWAIT-NOT: kvc_rt_mlir_gpu_synchronize
// NOWAIT: return
// CHECK: gpu.func @append0_run0(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: memref<3x2x1x64xf32>, %{{.*}}: memref<3x2x1x64xf32>) kernel attributes {known_block_size = array<i32: 128, 1, 1>, nvvm.minctasm = 5 : i32}
// CHECK: %[[RECORDS:.*]] = llvm.addrspacecast %{{.*}} : !llvm.ptr to !llvm.ptr<1>
// CHECK: %[[SIDE:.*]] = gpu.block_id z
// CHECK: arith.cmpi eq, %[[SIDE]], %c0
// Keys: the entry's record (40 bytes), then (c1 - c0) / 32 * 64 groups.
// CHECK: arith.muli %{{.*}}, %c40 : index
// CHECK: llvm.load %{{.*}} {alignment = 8 : i64} : !llvm.ptr<1> -> i64
// CHECK: %[[GROUPS:.*]] = arith.divui %{{.*}}, %c32{{.*}} : index
// CHECK: %[[ITEMS:.*]] = arith.muli %[[GROUPS]], %c64{{.*}} : index
// CHECK: scf.for %{{.*}} = %thread_id_x to %[[ITEMS]] step %c128
// CHECK: arith.cmpi sge, %{{.*}}, %c0_i32
// Each packed word of a group goes to its channel pair's words as two
// halves (docs/layout.md, channel pairs), then the scale and zero.
// CHECK: %[[LOW:.*]] = arith.trunci %[[WORD:.*]] : i32 to i16
// CHECK: llvm.store %[[LOW]], %{{.*}} {alignment = 2 : i64} : i16, !llvm.ptr<1>
// CHECK: %[[HIGHBITS:.*]] = arith.shrui %[[WORD]], %c16_i32{{.*}} : i32
// CHECK: %[[HIGH:.*]] = arith.trunci %[[HIGHBITS]] : i32 to i16
// CHECK: llvm.store %[[HIGH]], %{{.*}} {alignment = 2 : i64} : i16, !llvm.ptr<1>
// CHECK-NOT: {alignment = 4 : i64} : i32, !llvm.ptr<1>
// CHECK: llvm.store %{{.*}}, %{{.*}} {alignment = 2 : i64} : f16, !llvm.ptr<1>
// CHECK: gpu.barrier
// CHECK: arith.maxui
// CHECK: scf.for %{{.*}} = %thread_id_x to %{{.*}} step %c128
// CHECK: memref.load %{{.*}} : memref<3x2x1x64xf32>
// CHECK: llvm.store %{{.*}}, %{{.*}} {alignment = 2 : i64} : f16, !llvm.ptr<1>
// Values: token-axis groups, (c1 - c0) * 2 of them.
// CHECK: arith.cmpi eq, %[[SIDE]], %c1
// CHECK: %[[VITEMS:.*]] = arith.muli %{{.*}}, %c2{{.*}} : index
// CHECK: scf.for %{{.*}} = %thread_id_x to %[[VITEMS]] step %c128
// CHECK: gpu.barrier
// CHECK: gpu.return
func.func @append_step(%cache: !kvc.cache<3x2x?x64xf16, #kivi>, %q: tensor<3x4x1x64xf32>,
                       %k: tensor<3x2x1x64xf32>, %v: tensor<3x2x1x64xf32>)
    -> (tensor<3x4x1x64xf32>, !kvc.cache<3x2x?x64xf16, #kivi>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<3x2x?x64xf16, #kivi>, tensor<3x2x1x64xf32>, tensor<3x2x1x64xf32>
  %o = kvc.attend %q, %c {causal} : tensor<3x4x1x64xf32>, !kvc.cache<3x2x?x64xf16, #kivi> -> tensor<3x4x1x64xf32>
  return %o, %c : tensor<3x4x1x64xf32>, !kvc.cache<3x2x?x64xf16, #kivi>
}

// -----
// The ops of a function form one chain of streams: each op's stream waits
// (on the device) for the previous op's, whatever cache it belongs to, and
// only the last is synchronized before the return. The first attention's
// result is returned and also the second's query: the kernels write it
// into the caller's buffer (buffer-results-to-out-params), which the second
// reads. An op nested in a region (an append carrying its cache through
// scf.if) waits for the chain too, then synchronizes its own stream before
// the region ends (the return may not follow it). A quantize launch,
// synchronous on a stream of its own, first waits for the chain.
#enc = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>,
                     value = #kvc.quant<bits = 4, axis = token, group = 32>,
                     residual = 64>
// CHECK-LABEL: func.func @chained
// CHECK-SAME: (%[[C0:[^:]*]]: !llvm.ptr, %[[C1:[^:]*]]: !llvm.ptr
// CHECK-SAME: -> (tensor<1x4x1x64xf32>, tensor<1x4x1x64xf32>, !llvm.ptr,
// CHECK: %[[S0:.*]] = call @kvc_rt_mlir_gpu_stream(%[[C0]], %{{.*}})
// CHECK: %[[OUT0:.*]] = memref.alloc() : memref<1x4x1x64xf32>
// CHECK: gpu.launch_func async {{.*}}@attend0_combine {{.*}}args({{.*}}, %[[OUT0]] : memref<1x4x1x64xf32>
// CHECK: %[[O0:.*]] = bufferization.to_tensor %[[OUT0]] restrict writable
// CHECK-NOT: kvc_rt_mlir_gpu_synchronize
// CHECK: %[[S1:.*]] = call @kvc_rt_mlir_gpu_stream(%[[C1]], %[[S0]])
// CHECK: bufferization.to_buffer %[[O0]] read_only
// CHECK: gpu.launch_func async {{.*}}@attend1_combine
// CHECK-NOT: kvc_rt_mlir_gpu_synchronize
// CHECK: %[[C2:.*]] = scf.if %{{.*}} -> (!llvm.ptr) {
// CHECK: call @kvc_rt_mlir_gpu_stream(%[[C0]], %[[S1]])
// CHECK: gpu.launch_func async {{.*}}@append2_run0
// CHECK: call @kvc_rt_mlir_gpu_synchronize(%[[C0]])
// CHECK-NEXT: scf.yield %[[C0]] : !llvm.ptr
// CHECK: } else {
// CHECK-NEXT: scf.yield %[[C0]] : !llvm.ptr
// CHECK: call @kvc_rt_mlir_gpu_synchronize(%[[C1]])
// CHECK-NEXT: gpu.launch_func @kvc_kernels::@quantize3
// CHECK-NOT: kvc_rt_mlir_gpu_synchronize
// CHECK: return %[[O0]], %{{.*}}, %[[C2]], %{{.*}}, %{{.*}}, %{{.*}} :
// Without the wait on return, the nested op and the quantize launch still
// wait for their streams; nothing else does.
// NOWAIT-LABEL: func.func @chained
// NOWAIT-SAME: (%[[C0:[^:]*]]: !llvm.ptr, %[[C1:[^:]*]]: !llvm.ptr
// NOWAIT-NOT: kvc_rt_mlir_gpu_synchronize
// NOWAIT: scf.if
// NOWAIT: call @kvc_rt_mlir_gpu_synchronize(%[[C0]])
// NOWAIT-NEXT: scf.yield
// NOWAIT: call @kvc_rt_mlir_gpu_synchronize(%[[C1]])
// NOWAIT-NEXT: gpu.launch_func @kvc_kernels::@quantize
// NOWAIT-NOT: kvc_rt_mlir_gpu_synchronize
// NOWAIT: return
func.func @chained(%c0: !kvc.cache<1x2x?x64xf16, #enc>, %c1: !kvc.cache<1x2x?x64xf16, #enc>,
                   %q: tensor<1x4x1x64xf32>, %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x1x64xf32>,
                   %x: tensor<2x64x128xf16>, %again: i1)
    -> (tensor<1x4x1x64xf32>, tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf16, #enc>,
        tensor<2x2x128x16xi8>, tensor<2x2x128xf16>, tensor<2x2x128xf16>) {
  %o0 = kvc.attend %q, %c0 : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf16, #enc> -> tensor<1x4x1x64xf32>
  %o1 = kvc.attend %o0, %c1 : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf16, #enc> -> tensor<1x4x1x64xf32>
  %c2 = scf.if %again -> !kvc.cache<1x2x?x64xf16, #enc> {
    %c = kvc.append %c0, %k, %v : !kvc.cache<1x2x?x64xf16, #enc>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
    scf.yield %c : !kvc.cache<1x2x?x64xf16, #enc>
  } else {
    scf.yield %c0 : !kvc.cache<1x2x?x64xf16, #enc>
  }
  %codes, %s, %z = kvc.quantize %x as quant<bits = 4, axis = channel, group = 32> : tensor<2x64x128xf16> -> tensor<2x2x128x16xi8>, tensor<2x2x128xf16>, tensor<2x2x128xf16>
  return %o0, %o1, %c2, %codes, %s, %z : tensor<1x4x1x64xf32>, tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf16, #enc>, tensor<2x2x128x16xi8>, tensor<2x2x128xf16>, tensor<2x2x128xf16>
}

// -----
// value-product=mma over token-axis values in groups of the whole head
// (2-bit, group 64 at head_dim 64): the scales are folded into the weights.
// The softmax reads each token's scale and zero (residual rows: 1 and 0),
// multiplies the weight by scale * 4 (2^bits, in f32: divided out at the
// end) before the split into hi and lo parts, and sums weight * zero
// beside the weights' sums, one block reduction for both (the scratch
// holds 3 x 2 heads x 4 warps). The value pass's B is then the prmt of the
// packed weights, as for other values; the codes go to A as read (interior
// blocks: the two tokens' low halves in one word by PRMT, each pair ANDed
// out as fp16 subnormals, code * 2^(bit - 24), with no power subtracted),
// with no fp16 fma and no scales. After the interior loop, channel tile
// j's sums are scaled back by 2^(24 - 2j) (pairs at bits 0, 2, 4, 6)
// before the edge loop adds its own. At the end each of heads 2t and 2t +
// 1 gets its zero sum, read again from the reduction's partials.
#wholehead = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                           value = #kvc.quant<bits = 2, axis = token, group = 64>,
                           residual = 64>
// VMMA-LABEL: func.func @whole_head_values
// VMMA: gpu.func @attend0_split0
// VMMA-SAME: %{{.*}} : memref<24xf32, #gpu.address_space<workgroup>>
// VMMA: %[[TERMS:.*]]:6 = scf.if %{{.*}} -> (vector<2xf16>, vector<2xf16>, vector<2xf16>, vector<2xf16>, vector<2xf16>, vector<2xf16>) {
// VMMA: } else {
// VMMA: %[[ONE:.*]] = arith.constant dense<1.000000e+00> : vector<2xf16>
// VMMA-NEXT: %[[NOUGHT:.*]] = arith.constant dense<0.000000e+00> : vector<2xf16>
// VMMA-NEXT: scf.yield %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[ONE]], %[[NOUGHT]]
// VMMA: %[[SCALE:.*]] = vector.extract %[[TERMS]]#4[0] : f16 from vector<2xf16>
// VMMA-NEXT: %[[SCALE32:.*]] = arith.extf %[[SCALE]] : f16 to f32
// VMMA-NEXT: %[[ZERO:.*]] = vector.extract %[[TERMS]]#5[0] : f16 from vector<2xf16>
// VMMA-NEXT: %[[ZERO32:.*]] = arith.extf %[[ZERO]] : f16 to f32
// VMMA-NEXT: %[[RANGE:.*]] = arith.constant 4.000000e+00 : f32
// VMMA-NEXT: %[[SCALE4:.*]] = arith.mulf %[[SCALE32]], %[[RANGE]] : f32
// VMMA: %[[WEIGHT:.*]] = math.exp
// VMMA-NEXT: %[[WS:.*]] = arith.mulf %[[WEIGHT]], %[[SCALE4]] : f32
// VMMA: %[[WSBITS:.*]] = arith.bitcast %[[WS]] : f32 to i32
// VMMA-NEXT: %[[WSCUT:.*]] = arith.andi %[[WSBITS]], %c-8192_i32 : i32
// VMMA: memref.store %{{.*}} : memref<2x512xf32, #gpu.address_space<workgroup>>
// VMMA-NEXT: arith.addf %{{.*}}, %[[WEIGHT]] : f32
// VMMA-NEXT: llvm.intr.fma(%[[WEIGHT]], %[[ZERO32]], %{{.*}}) : (f32, f32, f32) -> f32
// VMMA: scf.yield %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : f32, f32, f32, f32
// VMMA-COUNT-4: memref.store %{{.*}} : memref<24xf32, #gpu.address_space<workgroup>>
// VMMA: gpu.barrier
// VMMA: %[[INTERIOR:.*]]:4 = scf.for %{{.*}} iter_args({{.*}}) -> (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>) {
// VMMA: nvvm.prmt <default> %{{.*}}, %{{.*}}, %{{.*}} : i32
// VMMA: %[[CODES:.*]] = arith.andi %[[LOWS:.*]], %c196611_i32 : i32
// VMMA-NEXT: llvm.bitcast %[[CODES]] : i32 to vector<2xf16>
// VMMA-NOT: arith.subf
// VMMA: arith.andi %[[LOWS]], %c786444_i32 : i32
// VMMA-NOT: arith.subf
// VMMA-NOT: llvm.intr.fma
// VMMA-NOT: arith.extf
// VMMA: nvgpu.mma.sync({{.*}}) {mmaShape = [16, 8, 8]}
// VMMA: %[[UNWEIGH0:.*]] = arith.constant dense<0x4B800000> : vector<2x2xf32>
// VMMA-NEXT: %[[TILE0:.*]] = arith.mulf %[[INTERIOR]]#0, %[[UNWEIGH0]] : vector<2x2xf32>
// VMMA-NEXT: arith.constant dense<0x4A800000> : vector<2x2xf32>
// VMMA-NEXT: arith.mulf %[[INTERIOR]]#1
// VMMA-NEXT: arith.constant dense<0x49800000> : vector<2x2xf32>
// VMMA-NEXT: arith.mulf %[[INTERIOR]]#2
// VMMA-NEXT: arith.constant dense<2.621440e+05> : vector<2x2xf32>
// VMMA-NEXT: arith.mulf %[[INTERIOR]]#3
// VMMA: scf.for %{{.*}} iter_args(%{{.*}} = %[[TILE0]], {{.*}}) -> (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>) {
// Head 2t's zero sum: value 2 + head of the sums' reduction (from 8, four
// warps), clamped to the group; warp 0's outputs take it (the warps'
// outputs are added up after).
// VMMA: %[[FIRSTWARP:.*]] = arith.cmpi eq, %[[WARP:.*]], %c0{{.*}} : index
// VMMA: %[[HEAD0:.*]] = arith.minui %{{.*}}, %c1{{.*}} : index
// VMMA: %[[VALUE0:.*]] = arith.addi %[[HEAD0]], %c2{{.*}} : index
// VMMA: %[[OFFSET0:.*]] = arith.muli %[[VALUE0]], %c4{{.*}} : index
// VMMA: %[[AT0:.*]] = arith.addi %[[OFFSET0]], %c8{{.*}} : index
// VMMA-NEXT: memref.load %{{.*}}[%[[AT0]]] : memref<24xf32, #gpu.address_space<workgroup>>
// VMMA-COUNT-3: memref.load %{{.*}} : memref<24xf32, #gpu.address_space<workgroup>>
// VMMA-NEXT: %[[ZEROSUM0:.*]] = arith.addf
// VMMA-NEXT: %[[WARPZEROSUM0:.*]] = arith.select %[[FIRSTWARP]], %[[ZEROSUM0]], %{{.*}} : f32
// VMMA-COUNT-4: memref.load %{{.*}} : memref<24xf32, #gpu.address_space<workgroup>>
// VMMA-NOT: gpu.shuffle  idx
// VMMA: gpu.shuffle  xor %{{.*}}, %c2_i32
// VMMA: %[[LOSUM:.*]] = arith.addf
// VMMA-NEXT: %[[QUARTER:.*]] = arith.constant 2.500000e-01 : f32
// VMMA-NEXT: llvm.intr.fma(%[[LOSUM]], %[[QUARTER]], %[[WARPZEROSUM0]]) : (f32, f32, f32) -> f32
func.func @whole_head_values(%q: tensor<2x4x1x64xf32>, %cache: !kvc.cache<2x2x?x64xf16, #wholehead>) -> tensor<2x4x1x64xf32> {
  %o = kvc.attend %q, %cache : tensor<2x4x1x64xf32>, !kvc.cache<2x2x?x64xf16, #wholehead> -> tensor<2x4x1x64xf32>
  return %o : tensor<2x4x1x64xf32>
}

// -----
// Decode steps in a loop: the cache is carried through scf.for as its
// binding, and the append, nested in the loop, synchronizes its own stream
// every iteration.
// CHECK-LABEL: func.func @steps_in_loop
// CHECK-SAME: (%[[CACHE:[^:]*]]: !llvm.ptr
// CHECK: %[[LAST:.*]] = scf.for {{.*}} iter_args(%[[C:.*]] = %[[CACHE]]) -> (!llvm.ptr) {
// CHECK: call @kvc_rt_mlir_gpu_stream(%[[C]],
// CHECK: gpu.launch_func async {{.*}}@append{{[0-9]+}}_run0
// CHECK: call @kvc_rt_mlir_gpu_synchronize(%[[C]])
// CHECK-NEXT: scf.yield %[[C]] : !llvm.ptr
// CHECK: return %[[LAST]] : !llvm.ptr
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
