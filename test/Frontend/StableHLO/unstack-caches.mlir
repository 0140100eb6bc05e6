// RUN: kvc-opt --allow-unregistered-dialect --kvc-stablehlo-to-linalg=unstack-caches %s | FileCheck %s
// RUN: kvc-opt --allow-unregistered-dialect --kvc-stablehlo-to-linalg %s | FileCheck %s --check-prefix=STACKED

// One cache tensor for both layers, [layers, B, H, S, D]: updated at
// [l, 0, 0, pos, 0], read back as the slice [l:l+1], returned whole. With
// unstack-caches each layer gets its own argument and result (in the
// stack's place), updated by a rank-4 insert_slice: the form
// kvc-raise-attention matches.
// CHECK-LABEL: func.func @stacked
// CHECK-SAME:  (%[[POS:.*]]: tensor<i32>, %[[NEW:.*]]: tensor<1x1x2x1x4xf32>, %[[L0:.*]]: tensor<1x2x8x4xf32>, %[[L1:.*]]: tensor<1x2x8x4xf32>)
// CHECK-SAME:  -> (tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>)
// CHECK:       %[[U:.*]] = tensor.collapse_shape %[[NEW]] {{\[}}[0, 1], [2], [3], [4]]
// CHECK:       %[[K0:.*]] = tensor.insert_slice %[[U]] into %[[L0]][0, 0, %[[P:.*]], 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x4xf32> into tensor<1x2x8x4xf32>
// CHECK:       %[[E0:.*]] = tensor.expand_shape %[[K0]] {{\[}}[0, 1], [2], [3], [4]]
// CHECK:       %[[R0:.*]] = tensor.collapse_shape %[[E0]]
// The read of layer 1 sees the update of layer 1.
// CHECK:       %[[K1:.*]] = tensor.insert_slice %[[U]] into %[[L1]][0, 0, %[[P]], 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x4xf32> into tensor<1x2x8x4xf32>
// CHECK:       %[[E1:.*]] = tensor.expand_shape %[[K1]]
// CHECK:       %[[R1:.*]] = tensor.collapse_shape %[[E1]]
// CHECK:       return %[[R0]], %[[R1]], %[[K0]], %[[K1]]

// Without the option the signature stays.
// STACKED-LABEL: func.func @stacked
// STACKED-SAME:  %{{.*}}: tensor<2x1x2x8x4xf32>) -> (tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<2x1x2x8x4xf32>)
func.func @stacked(%pos: tensor<i32>, %new: tensor<1x1x2x1x4xf32>, %cache: tensor<2x1x2x8x4xf32>) -> (tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<2x1x2x8x4xf32>) {
  %c0 = "stablehlo.constant"() <{value = dense<0> : tensor<i32>}> : () -> tensor<i32>
  %c1 = "stablehlo.constant"() <{value = dense<1> : tensor<i32>}> : () -> tensor<i32>
  %0 = "stablehlo.dynamic_update_slice"(%cache, %new, %c0, %c0, %c0, %pos, %c0) : (tensor<2x1x2x8x4xf32>, tensor<1x1x2x1x4xf32>, tensor<i32>, tensor<i32>, tensor<i32>, tensor<i32>, tensor<i32>) -> tensor<2x1x2x8x4xf32>
  %1 = "stablehlo.slice"(%0) <{limit_indices = array<i64: 1, 1, 2, 8, 4>, start_indices = array<i64: 0, 0, 0, 0, 0>, strides = array<i64: 1, 1, 1, 1, 1>}> : (tensor<2x1x2x8x4xf32>) -> tensor<1x1x2x8x4xf32>
  %2 = "stablehlo.reshape"(%1) : (tensor<1x1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  %3 = "stablehlo.dynamic_update_slice"(%0, %new, %c1, %c0, %c0, %pos, %c0) : (tensor<2x1x2x8x4xf32>, tensor<1x1x2x1x4xf32>, tensor<i32>, tensor<i32>, tensor<i32>, tensor<i32>, tensor<i32>) -> tensor<2x1x2x8x4xf32>
  %4 = "stablehlo.slice"(%3) <{limit_indices = array<i64: 2, 1, 2, 8, 4>, start_indices = array<i64: 1, 0, 0, 0, 0>, strides = array<i64: 1, 1, 1, 1, 1>}> : (tensor<2x1x2x8x4xf32>) -> tensor<1x1x2x8x4xf32>
  %5 = "stablehlo.reshape"(%4) : (tensor<1x1x2x8x4xf32>) -> tensor<1x2x8x4xf32>
  return %2, %5, %3 : tensor<1x2x8x4xf32>, tensor<1x2x8x4xf32>, tensor<2x1x2x8x4xf32>
}
