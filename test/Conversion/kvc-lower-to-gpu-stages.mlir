// RUN: kvc-opt %s --kvc-lower-to-gpu="key-product=mma value-product=mma key-stages=2" | FileCheck %s
// RUN: kvc-opt %s --kvc-lower-to-gpu="key-product=mma value-product=mma key-stages=3" | FileCheck %s --check-prefix=THREE
// RUN: kvc-opt %s --kvc-lower-to-gpu="key-product=mma value-product=mma key-stages=2 value-stages=2" | FileCheck %s --check-prefix=VALUES
// RUN: kvc-opt %s --kvc-lower-to-gpu="key-product=mma value-product=mma" | not grep cp.async

// key-stages (Staging.h): each warp of the tensor-core key pass copies
// its next interior units into shared-memory stages with cp.async and
// reads them from there. 2-bit channel-axis keys at head_dim 64: a unit's
// copy is 768 bytes (32 tokens x 64 channels x 2 bits, then 64 (scale,
// zero) pairs), 48 16-byte segments, so the second of each lane's two is
// only the first 16 lanes'; 4 warps x 2 stages x 768 = 6144 bytes, which
// the value pass's per-warp sums (4 x 4 x 64 f32 = 4096 bytes) share: a
// buffer of dynamic shared memory (16-byte aligned by the NVVM lowering)
// whose size the split kernel's launch gives.

#kivi2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 128>

// CHECK: %[[SIZE:.*]] = arith.constant 6144 : i32
// CHECK: gpu.launch_func async [%{{.*}}] @kvc_kernels::@attend0_split0
// CHECK-SAME: dynamic_shared_memory_size %[[SIZE]]
// The combine kernel takes none.
// CHECK: gpu.launch_func async [%{{.*}}] @kvc_kernels::@attend0_combine
// CHECK-NOT: dynamic_shared_memory_size
// CHECK-SAME: args
// CHECK-LABEL: gpu.func @attend0_split0
// CHECK-NOT: xi8, #gpu.address_space<workgroup>>
// CHECK-SAME: kernel
// CHECK: %[[BYTES:.*]] = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// CHECK: %[[AT:.*]] = memref.extract_aligned_pointer_as_index %[[BYTES]]
// CHECK: %[[WIDE:.*]] = arith.index_cast %[[AT]] : index to i64
// CHECK: %[[STAGES:.*]] = llvm.inttoptr %[[WIDE]] : i64 to !llvm.ptr<3>
// The first unit's copy is issued before the edge units' loop.
// CHECK: scf.if
// CHECK: %[[DST:.*]] = llvm.getelementptr %[[STAGES]][%{{.*}}] : (!llvm.ptr<3>, i64) -> !llvm.ptr<3>, i8
// CHECK: nvvm.cp.async.shared.global %[[DST]], %{{.*}}, 16, cache =  cg : !llvm.ptr<3>, !llvm.ptr<1>
// CHECK: %[[LANES:.*]] = arith.cmpi ult, %{{.*}}, %c48 : index
// CHECK: scf.if %[[LANES]]
// CHECK: nvvm.cp.async.shared.global
// CHECK: nvvm.cp.async.commit.group
// CHECK-NOT: nvvm.cp.async
// CHECK: scf.for
// The interior loop carries the stage: it loads the page-table entry of
// the unit it copies next (the load and the wait overlap), waits for the
// current unit's copy, meets the warp's other lanes, copies the next unit
// into the stage before, then reads the codes and parameters from shared
// memory.
// CHECK: %{{.*}} = scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c128{{.*}} iter_args(%[[STAGE:.*]] = %c0{{.*}}) -> (index)
// CHECK: %[[PAGE:.*]] = scf.if %{{.*}} -> (i32)
// CHECK: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<1> -> i32
// CHECK: nvvm.cp.async.wait.group 0
// CHECK: nvvm.bar.warp.sync %c-1_i32 : i32
// CHECK: %[[BASE:.*]] = arith.muli %[[STAGE]], %c768 : index
// CHECK: arith.cmpi eq, %[[STAGE]], %c0{{.*}} : index
// CHECK: arith.index_cast %[[PAGE]] : i32 to index
// CHECK: nvvm.cp.async.shared.global
// CHECK: nvvm.cp.async.commit.group
// CHECK: llvm.load %{{.*}} {alignment = 16 : i64} : !llvm.ptr<3> -> vector<8xf16>
// CHECK: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<3> -> i32
// CHECK: nvgpu.mma.sync
// CHECK: scf.yield %{{.*}} : index
// The value pass's sums in the same bytes.
// CHECK: memref.view %[[BYTES]][%{{.*}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4x4x64xf32, #gpu.address_space<workgroup>>

// Three stages: two units copied ahead before the loop, which waits for
// all but the newest group.
// THREE: arith.constant 9216 : i32
// THREE-LABEL: gpu.func @attend0_split0
// THREE: gpu.dynamic_shared_memory
// THREE: nvvm.cp.async.commit.group
// THREE: nvvm.cp.async.commit.group
// THREE: iter_args
// THREE-SAME: -> (index)
// THREE: scf.if %{{.*}} -> (i32)
// THREE: nvvm.cp.async.wait.group 1
// value-stages: the value pass's interior blocks of 16 tokens alike, 384
// bytes a copy (16 rows of 64 2-bit codes, then their two groups' (scale,
// zero) pairs), 24 segments (lanes 0-15 copy the codes, 16-23 the pairs);
// 4 x 2 x 384 = 3072 bytes, the value sums after them (3072 + 4096 = 7168
// bytes, more than the key stages' 6144, which they overlap).
// VALUES: %[[SIZE:.*]] = arith.constant 7168 : i32
// VALUES: gpu.launch_func async [%{{.*}}] @kvc_kernels::@attend0_split0
// VALUES-SAME: dynamic_shared_memory_size %[[SIZE]]
// VALUES-LABEL: gpu.func @attend0_split0
// VALUES: %[[BYTES:.*]] = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// The value sums' view, then the value pass's stages in the same bytes.
// VALUES: memref.view %[[BYTES]][%c3072][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4x4x64xf32, #gpu.address_space<workgroup>>
// VALUES: %[[AT2:.*]] = memref.extract_aligned_pointer_as_index %[[BYTES]]
// VALUES: %[[WIDE:.*]] = arith.index_cast %[[AT2]] : index to i64
// VALUES: %[[STAGES:.*]] = llvm.inttoptr %[[WIDE]] : i64 to !llvm.ptr<3>
// VALUES: %[[LANES:.*]] = arith.cmpi ult, %{{.*}}, %c24{{.*}} : index
// VALUES: scf.if %[[LANES]]
// VALUES: %[[CODES:.*]] = arith.cmpi ult, %{{.*}}, %c256{{.*}} : index
// VALUES: arith.select %[[CODES]]
// VALUES: nvvm.cp.async.shared.global
// VALUES: nvvm.cp.async.commit.group
// The interior blocks carry the stage after the four channel tiles' sums.
// VALUES: %{{.*}}:5 = scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c64{{.*}} iter_args({{.*}}, %[[STAGE:.*]] = %c0{{.*}}) -> (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, index)
// VALUES: scf.if %{{.*}} -> (i32)
// VALUES: nvvm.cp.async.wait.group 0
// VALUES: nvvm.bar.warp.sync
// VALUES: arith.muli %[[STAGE]], %c384 : index
// VALUES: nvvm.cp.async.shared.global
// VALUES: nvvm.cp.async.commit.group
// VALUES: llvm.load %{{.*}} {alignment = 2 : i64} : !llvm.ptr<3> -> i16
// VALUES: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr<3> -> vector<2xf16>
// VALUES: nvgpu.mma.sync
func.func @decode(%cache: !kvc.cache<4x2x?x64xf16, #kivi2>, %q: tensor<4x8x1x64xf32>) -> tensor<4x8x1x64xf32> {
  %o = kvc.attend %q, %cache : tensor<4x8x1x64xf32>, !kvc.cache<4x2x?x64xf16, #kivi2> -> tensor<4x8x1x64xf32>
  return %o : tensor<4x8x1x64xf32>
}
