// RUN: kvc-opt %s -split-input-file --kvc-lower-to-gpu="combine=fused" | FileCheck %s
// RUN: kvc-opt %s -split-input-file --kvc-lower-to-gpu | FileCheck %s --check-prefix=KERNEL

// combine=fused: no combine kernel (its PTX and registers:
// kvc-gpu-pipeline-fused-combine.test). The host asks the runtime for an int32
// arrival counter per (sequence, KV head) (4 x 2 = 8), zero between
// launches, and passes the output and the counters to the split kernel.

#kivi2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 128>
// CHECK-LABEL: func.func @decode
// CHECK: %[[WORKSPACE:.*]] = call @kvc_rt_mlir_gpu_workspace
// CHECK: %[[COUNTERS:.*]] = call @kvc_rt_mlir_gpu_counters(%{{.*}}, %c8_i64) : (!llvm.ptr, i64) -> !llvm.ptr
// A null block (out of memory) fails the layout check's flag: the kernel
// then writes NaN and touches no counter.
// CHECK: %[[NULL:.*]] = llvm.icmp "ne" %[[COUNTERS]], %{{.*}} : !llvm.ptr
// CHECK: %[[OK:.*]] = arith.andi %{{.*}}, %[[NULL]] : i1
// CHECK: %[[OK32:.*]] = arith.extui %[[OK]] : i1 to i32
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<4x8x1x64xf32>
// CHECK: gpu.launch_func async [%{{.*}}] @kvc_kernels::@attend0_split0
// CHECK-SAME: %[[OK32]] : i32, %{{.*}} : index, %{{.*}} : index, %[[OUT]] : memref<4x8x1x64xf32>, %[[COUNTERS]] : !llvm.ptr)
// CHECK-NOT: gpu.launch_func
// CHECK: call @kvc_rt_mlir_gpu_synchronize
// CHECK-NOT: @attend0_combine
// The merge's buffers follow the split kernel's own: the warps' partial
// outputs and sums, the maximum's scratch, and the merge's state (the last
// block's flag, the KV head's first output row, the split count).
// CHECK-LABEL: gpu.func @attend0_split0
// CHECK-SAME: %[[SPLITS:[a-z0-9]+]]: index, %[[OKARG:[a-z0-9]+]]: i32, %{{[a-z0-9]+}}: index, %{{[a-z0-9]+}}: index, %[[OUTARG:[a-z0-9]+]]: memref<4x8x1x64xf32>, %[[CARG:[a-z0-9]+]]: !llvm.ptr)
// CHECK-SAME: %[[PARTIALS:[a-z0-9]+]] : memref<4x64xf32, #gpu.address_space<workgroup>>, %[[SUMS:[a-z0-9]+]] : memref<4xf32, #gpu.address_space<workgroup>>, %[[MAXIMA:[a-z0-9]+]] : memref<4xf32, #gpu.address_space<workgroup>>, %[[STATE:[a-z0-9]+]] : memref<3xi32, #gpu.address_space<workgroup>>)
// CHECK: %[[VALID:.*]] = arith.cmpi ne, %[[OKARG]], %{{.*}} : i32
// CHECK: scf.if %[[VALID]] {
// Thread 0 records the first row (batch * 8 + KV head * 4) and the split
// count where it writes the softmax's statistics: the merge reads them
// back rather than keep them (or what LLVM would reuse of them) in
// registers across the value pass.
// CHECK: memref.store %{{.*}}, %[[STATE]][%c1{{(_[0-9]+)?}}] : memref<3xi32, #gpu.address_space<workgroup>>
// CHECK: %[[SPLITS32:.*]] = arith.index_cast %[[SPLITS]] : index to i32
// CHECK-NEXT: memref.store %[[SPLITS32]], %[[STATE]][%c2{{(_[0-9]+)?}}] : memref<3xi32, #gpu.address_space<workgroup>>
// After the partials: a barrier, then thread 0 counts the block in on
// counter [batch][KV head] = row / 4, between a release and an acquire at
// GPU scope.
// CHECK: gpu.barrier
// CHECK-NEXT: %{{.*}} = arith.constant 0 : index
// CHECK-NEXT: %[[TID:.*]] = gpu.thread_id x
// CHECK-NEXT: %[[THREAD0:.*]] = arith.cmpi eq, %[[TID]], %{{.*}} : index
// CHECK-NEXT: scf.if %[[THREAD0]] {
// CHECK: %[[READROW:.*]] = memref.load %[[STATE]][%c1{{(_[0-9]+)?}}] : memref<3xi32, #gpu.address_space<workgroup>>
// CHECK-NEXT: %[[RECORDED:.*]] = arith.index_castui %[[READROW]] : i32 to index
// CHECK-NEXT: %{{.*}} = arith.constant 4 : index
// CHECK-NEXT: %[[SLOT:.*]] = arith.divui %[[RECORDED]], %{{.*}} : index
// CHECK-NEXT: %[[WIDE:.*]] = arith.index_cast %[[SLOT]] : index to i64
// CHECK-NEXT: %[[CPTR:.*]] = llvm.addrspacecast %[[CARG]] : !llvm.ptr to !llvm.ptr<1>
// CHECK-NEXT: %[[COUNTER:.*]] = llvm.getelementptr %[[CPTR]][%[[WIDE]]] : (!llvm.ptr<1>, i64) -> !llvm.ptr<1>, i32
// CHECK-NEXT: llvm.fence syncscope("device") release
// CHECK: %[[BEFORE:.*]] = llvm.atomicrmw add %[[COUNTER]], %c1_i32{{.*}} syncscope("device") monotonic : !llvm.ptr<1>, i32
// CHECK-NEXT: llvm.fence syncscope("device") acquire
// The block that counts the last of the splits merges, and sets the
// counter back to zero for the next launch.
// CHECK: %[[READSPLITS:.*]] = memref.load %[[STATE]][%c2{{(_[0-9]+)?}}] : memref<3xi32, #gpu.address_space<workgroup>>
// CHECK-NEXT: %[[COUNT:.*]] = arith.index_castui %[[READSPLITS]] : i32 to index
// CHECK-NEXT: %[[LASTSPLIT:.*]] = arith.subi %[[COUNT]], %c1{{.*}} : index
// CHECK-NEXT: %[[LASTSPLIT32:.*]] = arith.index_cast %[[LASTSPLIT]] : index to i32
// CHECK-NEXT: %[[ISLAST:.*]] = arith.cmpi eq, %[[BEFORE]], %[[LASTSPLIT32]] : i32
// CHECK-NEXT: scf.if %[[ISLAST]] {
// CHECK: llvm.store %c0_i32{{.*}}, %[[COUNTER]] {alignment = 4 : i64} : i32, !llvm.ptr<1>
// CHECK: %[[BIT:.*]] = arith.extui %[[ISLAST]] : i1 to i32
// CHECK-NEXT: memref.store %[[BIT]], %[[STATE]][%c0{{(_[0-9]+)?}}] : memref<3xi32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK: %[[FLAG:.*]] = memref.load %[[STATE]][%c0{{(_[0-9]+)?}}] : memref<3xi32, #gpu.address_space<workgroup>>
// CHECK: %[[MERGES:.*]] = arith.cmpi ne, %[[FLAG]], %{{.*}} : i32
// CHECK: scf.if %[[MERGES]] {
// The KV head's 4 query heads, a merge each in a loop over the rows: the
// maxima's block reduction, the warps' weighted sums, the output rows
// (the output viewed as [B * Hq][D]).
// The thread id read again, so that LLVM keeps none of the passes' values
// derived from it (warp, lane) alive until the merge.
// CHECK: %[[FIRST:.*]] = arith.index_castui %{{.*}} : i32 to index
// CHECK: %[[FRESH:.*]] = llvm.inline_asm has_side_effects "mov.u32 $0, %tid.x;", "=r"  : () -> i32
// CHECK-NEXT: %[[MERGETID:.*]] = arith.index_castui %[[FRESH]] : i32 to index
// CHECK: %[[END:.*]] = arith.addi %[[FIRST]], %c4{{.*}} : index
// CHECK: scf.for %[[ROW:.*]] = %[[FIRST]] to %[[END]] step %c1
// CHECK-NEXT: arith.constant 32 : index
// CHECK-NEXT: %{{.*}} = arith.divui %[[MERGETID]], %{{.*}} : index
// CHECK: memref.store %{{.*}}, %[[MAXIMA]][%{{.*}}] : memref<4xf32, #gpu.address_space<workgroup>>
// CHECK: memref.store %{{.*}}, %[[PARTIALS]][%{{.*}}] : memref<4x64xf32, #gpu.address_space<workgroup>>
// CHECK: memref.store %{{.*}}, %[[SUMS]][%{{.*}}] : memref<4xf32, #gpu.address_space<workgroup>>
// CHECK: %[[ROWS:.*]] = memref.collapse_shape %[[OUTARG]] {{\[\[}}0, 1, 2], [3]] : memref<4x8x1x64xf32> into memref<32x64xf32>
// CHECK: arith.divf
// CHECK: memref.store %{{.*}}, %[[ROWS]][%[[ROW]], %{{.*}}] : memref<32x64xf32>
// Without a valid layout (or counters) nothing counts: the block of split
// 0 writes NaN into the 4 rows.
// CHECK: } else {
// CHECK: %[[SPLIT0:.*]] = arith.cmpi eq, %block_id_x, %{{.*}} : index
// CHECK-NEXT: scf.if %[[SPLIT0]] {
// CHECK-NOT: llvm.atomicrmw
// CHECK-COUNT-4: arith.constant 0x7FC00000 : f32
// CHECK: gpu.return
// The default, combine=kernel: two launches, no counters.
// KERNEL-LABEL: func.func @decode
// KERNEL-NOT: kvc_rt_mlir_gpu_counters
// KERNEL: gpu.launch_func async [%{{.*}}] @kvc_kernels::@attend0_split0
// KERNEL: gpu.launch_func async [%{{.*}}] @kvc_kernels::@attend0_combine
// KERNEL-LABEL: gpu.func @attend0_split0
// KERNEL-NOT: llvm.atomicrmw
// KERNEL: gpu.func @attend0_combine
func.func @decode(%cache: !kvc.cache<4x2x?x64xf16, #kivi2>, %q: tensor<4x8x1x64xf32>) -> tensor<4x8x1x64xf32> {
  %o = kvc.attend %q, %cache : tensor<4x8x1x64xf32>, !kvc.cache<4x2x?x64xf16, #kivi2> -> tensor<4x8x1x64xf32>
  return %o : tensor<4x8x1x64xf32>
}
