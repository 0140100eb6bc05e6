// RUN: kvc-opt %s -canonicalize -split-input-file | FileCheck %s

// Folds that preserve semantics exactly, and the round trips that must NOT
// fold: neither dequantize(quantize(x)) nor quantize(dequantize(p)) is an
// identity in general.

// Constants quantize at compile time, with the numerics library's bytes:
// values 0,1,2,3 repeating -> scale 1, zero 0, codes 0,1,2,3 packed four to a
// byte as 0b11100100 = 0xE4 = -28.
// CHECK-LABEL: func.func @fold_quantize_constant
// CHECK-DAG: %[[CODES:.*]] = arith.constant dense<-28> : tensor<1x8xi8>
// CHECK-DAG: %[[SCALES:.*]] = arith.constant dense<1.000000e+00> : tensor<1x1xf16>
// CHECK-DAG: %[[ZEROS:.*]] = arith.constant dense<0.000000e+00> : tensor<1x1xf16>
// CHECK-NOT: kvc.quantize
// CHECK: return %[[CODES]], %[[SCALES]], %[[ZEROS]]
func.func @fold_quantize_constant() -> (tensor<1x8xi8>, tensor<1x1xf16>, tensor<1x1xf16>) {
  %x = arith.constant dense<[[0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0,
                              0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0]]> : tensor<1x32xf32>
  %c, %s, %z = kvc.quantize %x as quant<bits = 2, axis = token, group = 32> : tensor<1x32xf32> -> tensor<1x8xi8>, tensor<1x1xf16>, tensor<1x1xf16>
  return %c, %s, %z : tensor<1x8xi8>, tensor<1x1xf16>, tensor<1x1xf16>
}

// -----
// CHECK-LABEL: func.func @fold_dequantize_constant
// CHECK: %[[X:.*]] = arith.constant dense<{{\[\[}}0.000000e+00, 1.000000e+00, 2.000000e+00, 3.000000e+00, 0.000000e+00, 1.000000e+00
// CHECK-SAME: tensor<1x32xf32>
// CHECK-NOT: kvc.dequantize
// CHECK: return %[[X]]
func.func @fold_dequantize_constant() -> tensor<1x32xf32> {
  %c = arith.constant dense<-28> : tensor<1x8xi8>
  %s = arith.constant dense<1.0> : tensor<1x1xf16>
  %z = arith.constant dense<0.0> : tensor<1x1xf16>
  %x = kvc.dequantize %c, %s, %z as quant<bits = 2, axis = token, group = 32> : tensor<1x8xi8>, tensor<1x1xf16>, tensor<1x1xf16> -> tensor<1x32xf32>
  return %x : tensor<1x32xf32>
}

// -----
// fp8 e4m3 with a per-token scale of max|x| / 448 = 1: 448 -> 0x7E (126),
// -448 -> 0xFE (-2), 0 -> 0, 1 -> 0x38 (56).
// CHECK-LABEL: func.func @fold_fp8_constant
// CHECK-DAG: %[[CODES:.*]] = arith.constant dense<{{\[\[}}126, -2, 0, 56]]> : tensor<1x4xi8>
// CHECK-DAG: %[[SCALES:.*]] = arith.constant dense<1.000000e+00> : tensor<1xf16>
// CHECK: return %[[CODES]], %[[SCALES]]
func.func @fold_fp8_constant() -> (tensor<1x4xi8>, tensor<1xf16>) {
  %x = arith.constant dense<[[448.0, -448.0, 0.0, 1.0]]> : tensor<1x4xf32>
  %c, %s = kvc.quantize %x as fp8<e4m3> : tensor<1x4xf32> -> tensor<1x4xi8>, tensor<1xf16>
  return %c, %s : tensor<1x4xi8>, tensor<1xf16>
}

// -----
// dequantize(quantize(x)) is lossy: it must stay.
// CHECK-LABEL: func.func @no_fold_dequantize_of_quantize
// CHECK: %[[C:.*]], %[[S:.*]], %[[Z:.*]] = kvc.quantize %{{.*}} as quant<bits = 8, axis = token, group = 64>
// CHECK: %[[X:.*]] = kvc.dequantize %[[C]], %[[S]], %[[Z]] as quant<bits = 8, axis = token, group = 64>
// CHECK: return %[[X]]
func.func @no_fold_dequantize_of_quantize(%x: tensor<4x64xf32>) -> tensor<4x64xf32> {
  %c, %s, %z = kvc.quantize %x as quant<bits = 8, axis = token, group = 64> : tensor<4x64xf32> -> tensor<4x64xi8>, tensor<4x1xf16>, tensor<4x1xf16>
  %y = kvc.dequantize %c, %s, %z as quant<bits = 8, axis = token, group = 64> : tensor<4x64xi8>, tensor<4x1xf16>, tensor<4x1xf16> -> tensor<4x64xf32>
  return %y : tensor<4x64xf32>
}

// -----
// quantize(dequantize(p)) recomputes min/max: codes that do not span the full
// range get a new scale, so it is not the identity on packed data either.
// CHECK-LABEL: func.func @no_fold_quantize_of_dequantize
// CHECK: %[[X:.*]] = kvc.dequantize
// CHECK: kvc.quantize %[[X]]
func.func @no_fold_quantize_of_dequantize(%c: tensor<4x16xi8>, %s: tensor<4x2xf16>, %z: tensor<4x2xf16>) -> (tensor<4x16xi8>, tensor<4x2xf16>, tensor<4x2xf16>) {
  %x = kvc.dequantize %c, %s, %z as quant<bits = 2, axis = token, group = 32> : tensor<4x16xi8>, tensor<4x2xf16>, tensor<4x2xf16> -> tensor<4x64xf32>
  %c2, %s2, %z2 = kvc.quantize %x as quant<bits = 2, axis = token, group = 32> : tensor<4x64xf32> -> tensor<4x16xi8>, tensor<4x2xf16>, tensor<4x2xf16>
  return %c2, %s2, %z2 : tensor<4x16xi8>, tensor<4x2xf16>, tensor<4x2xf16>
}

// -----
// Appending no tokens leaves the cache as it is.
// CHECK-LABEL: func.func @fold_empty_append
// CHECK-SAME: (%[[CACHE:.*]]: !kvc.cache
// CHECK-NOT: kvc.append
// CHECK: return %[[CACHE]]
func.func @fold_empty_append(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<1x2x0x64xf32>) -> !kvc.cache<1x2x?x64xf16> {
  %c1 = kvc.append %c, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<1x2x0x64xf32>, tensor<1x2x0x64xf32>
  return %c1 : !kvc.cache<1x2x?x64xf16>
}

// -----
// A non-empty append stays.
// CHECK-LABEL: func.func @no_fold_append
// CHECK: kvc.append
func.func @no_fold_append(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<1x2x1x64xf32>) -> !kvc.cache<1x2x?x64xf16> {
  %c1 = kvc.append %c, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  return %c1 : !kvc.cache<1x2x?x64xf16>
}

// -----
// A fork with one unused result shares nothing.
// CHECK-LABEL: func.func @fork_single_use
// CHECK-SAME: (%[[CACHE:[^:]*]]: !kvc.cache
// CHECK-NOT: kvc.fork
// CHECK: kvc.append %[[CACHE]],
func.func @fork_single_use(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<1x2x1x64xf32>) -> !kvc.cache<1x2x?x64xf16> {
  %a, %b = kvc.fork %c : !kvc.cache<1x2x?x64xf16>
  %a1 = kvc.append %a, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  return %a1 : !kvc.cache<1x2x?x64xf16>
}

// -----
// Both results used: the fork is the sharing and stays.
// CHECK-LABEL: func.func @fork_both_used
// CHECK: kvc.fork
func.func @fork_both_used(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<1x2x1x64xf32>) -> (!kvc.cache<1x2x?x64xf16>, !kvc.cache<1x2x?x64xf16>) {
  %a, %b = kvc.fork %c : !kvc.cache<1x2x?x64xf16>
  %a1 = kvc.append %a, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %b1 = kvc.append %b, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  return %a1, %b1 : !kvc.cache<1x2x?x64xf16>, !kvc.cache<1x2x?x64xf16>
}
