// REQUIRES: cuda-toolkit
// RUN: kvc-opt %s -split-input-file --kvc-lower-to-gpu | FileCheck %s
// RUN: kvc-opt %s -split-input-file --kvc-gpu-pipeline="format=isa" -o %t.sm90.mlir
// RUN: %python %kvc_src_root/scripts/ptxas_check.py %t.sm90.mlir --arch sm_90a --ptxas %ptxas --require-16b-loads split | FileCheck %s --check-prefix=SM90
// RUN: kvc-opt %s -split-input-file --kvc-gpu-pipeline="chip=sm_80 format=isa" -o %t.sm80.mlir
// RUN: %python %kvc_src_root/scripts/ptxas_check.py %t.sm80.mlir --arch sm_80 --ptxas %ptxas --require-16b-loads split | FileCheck %s --check-prefix=SM80

// head_dims whose value spans do not fill a 128-thread block (96: Phi-3's;
// 192): as many token lanes a span as fit, a power of two, the threads
// they take whole warps, and the other warps skip the value pass (before,
// head_dim 96 got no value pass at all). The key pass takes a token a
// thread at any head_dim. ptxas compiles every kernel without spills on
// sm_90a and sm_80, the split kernels with 16-byte loads.

// SM90: ptxas_check: 10 kernels, registers {{[0-9]+}}..{{[0-9]+}}, 0 failures
// SM80: ptxas_check: 10 kernels, registers {{[0-9]+}}..{{[0-9]+}}, 0 failures

// 96 channels, GQA 1: 12 spans of 8 channels, 8 token lanes each (96
// threads, three warps); the lanes' sums meet by shuffles within the pass.
// CHECK-LABEL: gpu.func @attend0_split0
// CHECK: %[[LANE:.*]] = arith.remui %thread_id_x, %c8{{.*}} : index
// CHECK: %[[ACTIVE:.*]] = arith.cmpi ult, %thread_id_x, %c96{{.*}} : index
// CHECK-NEXT: scf.if %[[ACTIVE]] {
// CHECK: scf.for %{{.*}} = %[[LANE]] to %{{.*}} step %c8
// CHECK: gpu.shuffle  xor %{{.*}}, %c4_i32
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32
// CHECK: }
// CHECK: gpu.return
#kivi2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 128>
func.func @phi3(%c: !kvc.cache<1x4x?x96xf16, #kivi2>, %q: tensor<1x4x1x96xf32>) -> tensor<1x4x1x96xf32> {
  %o = kvc.attend %q, %c : tensor<1x4x1x96xf32>, !kvc.cache<1x4x?x96xf16, #kivi2> -> tensor<1x4x1x96xf32>
  return %o : tensor<1x4x1x96xf32>
}

// -----
// GQA 8: spans of 2 channels (16 accumulators), 48 spans of 2 lanes.
// CHECK-LABEL: gpu.func @attend0_split0
// CHECK: arith.remui %thread_id_x, %c2{{.*}} : index
// CHECK: arith.cmpi ult, %thread_id_x, %c96{{.*}} : index
#k4v4 = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>,
                      value = #kvc.quant<bits = 4, axis = token, group = 32>,
                      residual = 128>
func.func @gqa8(%c: !kvc.cache<2x2x?x96xf16, #k4v4>, %q: tensor<2x16x1x96xf32>) -> tensor<2x16x1x96xf32> {
  %o = kvc.attend %q, %c : tensor<2x16x1x96xf32>, !kvc.cache<2x2x?x96xf16, #k4v4> -> tensor<2x16x1x96xf32>
  return %o : tensor<2x16x1x96xf32>
}

// -----
// fp8 keys, 3-bit values over the whole head.
// CHECK-LABEL: gpu.func @attend0_split0
// CHECK: arith.cmpi ult, %thread_id_x, %c96{{.*}} : index
#fp8q3 = #kvc.encoding<key = #kvc.fp8<e4m3>,
                       value = #kvc.quant<bits = 3, axis = token, group = 96>,
                       residual = 0>
func.func @fp8_keys(%c: !kvc.cache<1x2x?x96xf16, #fp8q3>, %q: tensor<1x8x1x96xf32>) -> tensor<1x8x1x96xf32> {
  %o = kvc.attend %q, %c : tensor<1x8x1x96xf32>, !kvc.cache<1x2x?x96xf16, #fp8q3> -> tensor<1x8x1x96xf32>
  return %o : tensor<1x8x1x96xf32>
}

// -----
// Token-axis keys, channel-axis values.
// CHECK-LABEL: gpu.func @attend0_split0
// CHECK: arith.cmpi ult, %thread_id_x, %c96{{.*}} : index
#axes = #kvc.encoding<key = #kvc.quant<bits = 4, axis = token, group = 32>,
                      value = #kvc.quant<bits = 2, axis = channel, group = 32>,
                      residual = 64>
func.func @axes(%c: !kvc.cache<1x2x?x96xf16, #axes>, %q: tensor<1x8x1x96xf32>) -> tensor<1x8x1x96xf32> {
  %o = kvc.attend %q, %c : tensor<1x8x1x96xf32>, !kvc.cache<1x2x?x96xf16, #axes> -> tensor<1x8x1x96xf32>
  return %o : tensor<1x8x1x96xf32>
}

// -----
// 192 channels, GQA 4: 48 spans of 4 channels, 2 lanes each (96 threads).
// CHECK-LABEL: gpu.func @attend0_split0
// CHECK: arith.remui %thread_id_x, %c2{{.*}} : index
// CHECK: arith.cmpi ult, %thread_id_x, %c96{{.*}} : index
#g64 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 64>,
                     value = #kvc.quant<bits = 2, axis = token, group = 64>,
                     residual = 128>
func.func @d192(%c: !kvc.cache<1x2x?x192xf16, #g64>, %q: tensor<1x8x1x192xf32>) -> tensor<1x8x1x192xf32> {
  %o = kvc.attend %q, %c : tensor<1x8x1x192xf32>, !kvc.cache<1x2x?x192xf16, #g64> -> tensor<1x8x1x192xf32>
  return %o : tensor<1x8x1x192xf32>
}
