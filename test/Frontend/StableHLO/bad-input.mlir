// Bad StableHLO: every problem is reported at its op, kvc-opt exits 1 and
// prints no IR.
// RUN: not kvc-opt --allow-unregistered-dialect --kvc-stablehlo-to-linalg %s -o %t 2>&1 | FileCheck %s
// RUN: not test -s %t

// CHECK: bad-input.mlir:[[# @LINE + 5]]:8: error: unsupported op 'stablehlo.custom_call'
// CHECK: bad-input.mlir:[[# @LINE + 5]]:8: error: malformed attribute 'comparison_direction' (#stablehlo<comparison_direction 1>): expected an identifier, found '1' at column 22
// CHECK: bad-input.mlir:[[# @LINE + 5]]:8: error: malformed attribute 'dot_dimension_numbers' (#stablehlo.dot<lhs_contracting_dimensions = [1] rhs_contracting_dimensions = [0]>): expected ',', found 'rhs_contracting_dimensions' at column 38
// CHECK-NOT: error
func.func @main(%x: tensor<4x4xf32>, %i: tensor<4xi32>) -> (tensor<4x4xf32>, tensor<4xi1>, tensor<4x4xf32>) {
  %0 = "stablehlo.custom_call"(%x) <{call_target_name = "Sharding"}> : (tensor<4x4xf32>) -> tensor<4x4xf32>
  %1 = "stablehlo.compare"(%i, %i) <{comparison_direction = #stablehlo<comparison_direction 1>}> : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi1>
  %2 = "stablehlo.dot_general"(%x, %x) <{dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [1] rhs_contracting_dimensions = [0]>}> : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return %0, %1, %2 : tensor<4x4xf32>, tensor<4xi1>, tensor<4x4xf32>
}
