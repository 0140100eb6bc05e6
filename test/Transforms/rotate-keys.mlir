// RUN: kvc-opt %s --kvc-rotate-keys --split-input-file --verify-diagnostics | FileCheck %s
// Running it twice rotates once.
// RUN: kvc-opt %s --kvc-rotate-keys --kvc-rotate-keys --split-input-file --verify-diagnostics | FileCheck %s

#kivi = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 128>
!cache = !kvc.cache<1x2x?x64xf16, #kivi>

// Compressed keys: the appended keys and the query go through x·H, a
// reduction over the last dimension with entries from the indices.
// CHECK-LABEL: func.func @compressed
// CHECK-SAME: %[[C:[^:]*]]: !kvc.cache<{{.*}}> {kvc.rotated_keys}, %[[Q:.*]]: tensor<1x4x1x64xf32>, %[[K:.*]]: tensor<1x2x1x64xf32>, %[[V:.*]]: tensor<1x2x1x64xf32>
// CHECK: %[[KF:.*]] = linalg.fill
// CHECK: %[[KR:.*]] = linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]
// CHECK-SAME: ins(%[[K]] : tensor<1x2x1x64xf32>) outs(%[[KF]] : tensor<1x2x1x64xf32>)
// CHECK: linalg.index 4
// CHECK: linalg.index 3
// CHECK: arith.shrui
// CHECK: arith.constant 1.250000e-01 : f32
// CHECK: arith.constant -1.250000e-01 : f32
// CHECK: %[[A:.*]] = kvc.append %[[C]], %[[KR]], %[[V]] {kvc.rotated_keys}
// CHECK: %[[QR:.*]] = linalg.generic
// CHECK-SAME: ins(%[[Q]] : tensor<1x4x1x64xf32>)
// CHECK: kvc.attend %[[QR]], %[[A]] {causal, kvc.rotated_keys}
// CHECK-NOT: linalg.generic
func.func @compressed(%c: !cache, %q: tensor<1x4x1x64xf32>, %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x1x64xf32>) -> (tensor<1x4x1x64xf32>, !cache) {
  %a = kvc.append %c, %k, %v : !cache, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o = kvc.attend %q, %a {causal} : tensor<1x4x1x64xf32>, !cache -> tensor<1x4x1x64xf32>
  return %o, %a : tensor<1x4x1x64xf32>, !cache
}

// -----

// fp16 keys (compressed values only): nothing to rotate.
#vonly = #kvc.encoding<key = #kvc.plain, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 128>
!cache = !kvc.cache<1x2x?x64xf16, #vonly>
// CHECK-LABEL: func.func @plain_keys
// CHECK-NOT: linalg.generic
// CHECK: kvc.append
// CHECK-NOT: kvc.rotated_keys
func.func @plain_keys(%c: !cache, %q: tensor<1x4x1x64xf32>, %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x1x64xf32>) -> (tensor<1x4x1x64xf32>, !cache) {
  %a = kvc.append %c, %k, %v : !cache, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o = kvc.attend %q, %a {causal} : tensor<1x4x1x64xf32>, !cache -> tensor<1x4x1x64xf32>
  return %o, %a : tensor<1x4x1x64xf32>, !cache
}

// -----

// A head dimension without a Hadamard matrix.
#kivi = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 128>
!cache = !kvc.cache<1x2x?x96xf16, #kivi>
func.func @odd_head_dim(%c: !cache, %k: tensor<1x2x1x96xf32>, %v: tensor<1x2x1x96xf32>) -> !cache {
  // expected-error @below {{kvc-rotate-keys: cannot rotate: the head dimension 96 is not a power of two}}
  %a = kvc.append %c, %k, %v : !cache, tensor<1x2x1x96xf32>, tensor<1x2x1x96xf32>
  return %a : !cache
}
