// RUN: kvc-opt --allow-unregistered-dialect --kvc-stablehlo-to-linalg -split-input-file %s | FileCheck %s

// Elementwise ops are one linalg.generic each, with the arith/math op of
// the element type in the body; bf16 math runs in f32, rsqrt is 1/sqrt.
// CHECK-LABEL: func.func @elementwise
// CHECK:       linalg.generic {{.*}} ins(%arg0, %arg1 : tensor<2x3xf32>, tensor<2x3xf32>)
// CHECK:         arith.addf %{{.*}}, %{{.*}} : f32
// CHECK:       linalg.generic
// CHECK:         arith.maxsi %{{.*}}, %{{.*}} : i32
// CHECK:       linalg.generic
// CHECK:         arith.ori %{{.*}}, %{{.*}} : i1
// CHECK:       linalg.generic
// CHECK:         %[[W:.*]] = arith.extf %{{.*}} : bf16 to f32
// CHECK-NEXT:    %[[E:.*]] = math.exp %[[W]] : f32
// CHECK-NEXT:    arith.truncf %[[E]] : f32 to bf16
// CHECK:       linalg.generic
// CHECK:         %[[R:.*]] = math.sqrt %{{.*}} : f32
// CHECK:         arith.divf %{{.*}}, %[[R]] : f32
// CHECK-NOT:   stablehlo
func.func @elementwise(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>, %i: tensor<2x3xi32>, %p: tensor<2x3xi1>, %h: tensor<2x3xbf16>) -> (tensor<2x3xf32>, tensor<2x3xi32>, tensor<2x3xi1>, tensor<2x3xbf16>, tensor<2x3xf32>) {
  %0 = "stablehlo.add"(%a, %b) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %1 = "stablehlo.maximum"(%i, %i) : (tensor<2x3xi32>, tensor<2x3xi32>) -> tensor<2x3xi32>
  %2 = "stablehlo.add"(%p, %p) : (tensor<2x3xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
  %3 = "stablehlo.exponential"(%h) : (tensor<2x3xbf16>) -> tensor<2x3xbf16>
  %4 = "stablehlo.rsqrt"(%a) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0, %1, %2, %3, %4 : tensor<2x3xf32>, tensor<2x3xi32>, tensor<2x3xi1>, tensor<2x3xbf16>, tensor<2x3xf32>
}

// -----

// Comparison direction and type come from the opaque attribute text.
// CHECK-LABEL: func.func @compare_select
// CHECK:       arith.cmpi sle, %{{.*}}, %{{.*}} : i32
// CHECK:       arith.cmpi ult, %{{.*}}, %{{.*}} : i32
// CHECK:       arith.cmpf une, %{{.*}}, %{{.*}} : f32
// A 0-d predicate is read at () for every element.
// CHECK:       linalg.generic {indexing_maps = [#{{.*}}, #{{.*}}, #{{.*}}, #{{.*}}]
// CHECK-SAME:    ins(%arg2, %arg3, %arg4 : tensor<i1>, tensor<4xf32>, tensor<4xf32>)
// CHECK:         arith.select
func.func @compare_select(%i: tensor<4xi32>, %j: tensor<4xi32>, %c: tensor<i1>, %x: tensor<4xf32>, %y: tensor<4xf32>) -> (tensor<4xi1>, tensor<4xi1>, tensor<4xi1>, tensor<4xf32>) {
  %0 = "stablehlo.compare"(%i, %j) <{compare_type = #stablehlo<comparison_type SIGNED>, comparison_direction = #stablehlo<comparison_direction LE>}> : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi1>
  %1 = "stablehlo.compare"(%i, %j) <{compare_type = #stablehlo<comparison_type UNSIGNED>, comparison_direction = #stablehlo<comparison_direction LT>}> : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi1>
  %2 = "stablehlo.compare"(%x, %y) <{comparison_direction = #stablehlo<comparison_direction NE>}> : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xi1>
  %3 = "stablehlo.select"(%c, %x, %y) : (tensor<i1>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %0, %1, %2, %3 : tensor<4xi1>, tensor<4xi1>, tensor<4xi1>, tensor<4xf32>
}

// -----

// CHECK-LABEL: func.func @convert_constant_iota
// CHECK:       arith.sitofp %{{.*}} : i32 to bf16
// CHECK:       arith.cmpf une, %{{.*}}, %{{.*}} : f32
// CHECK:       arith.extui %{{.*}} : i1 to i32
// CHECK:       arith.fptosi %{{.*}} : f32 to i32
// CHECK:       arith.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
// CHECK:       linalg.generic
// CHECK:         %[[I:.*]] = linalg.index 1 : index
// CHECK:         %[[W:.*]] = arith.index_cast %[[I]] : index to i64
// CHECK:         arith.sitofp %[[W]] : i64 to f32
func.func @convert_constant_iota(%i: tensor<4xi32>, %x: tensor<4xf32>, %p: tensor<4xi1>) -> (tensor<4xbf16>, tensor<4xi1>, tensor<4xi32>, tensor<4xi32>, tensor<2xf32>, tensor<2x3xf32>) {
  %0 = "stablehlo.convert"(%i) : (tensor<4xi32>) -> tensor<4xbf16>
  %1 = "stablehlo.convert"(%x) : (tensor<4xf32>) -> tensor<4xi1>
  %2 = "stablehlo.convert"(%p) : (tensor<4xi1>) -> tensor<4xi32>
  %3 = "stablehlo.convert"(%x) : (tensor<4xf32>) -> tensor<4xi32>
  %4 = "stablehlo.constant"() <{value = dense<[1.0, 2.0]> : tensor<2xf32>}> : () -> tensor<2xf32>
  %5 = "stablehlo.iota"() <{iota_dimension = 1 : i64}> : () -> tensor<2x3xf32>
  return %0, %1, %2, %3, %4, %5 : tensor<4xbf16>, tensor<4xi1>, tensor<4xi32>, tensor<4xi32>, tensor<2xf32>, tensor<2x3xf32>
}

// -----

// broadcast_in_dim is a copy-like generic; a size-1 operand dimension that
// expands is read at 0.
// CHECK-DAG:   #[[BIN:.*]] = affine_map<(d0, d1, d2) -> (0, d2)>
// CHECK-DAG:   #[[BOUT:.*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @broadcast
// CHECK:       linalg.generic {indexing_maps = [#[[BIN]], #[[BOUT]]], iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg0 : tensor<1x5xf32>)
// CHECK-NEXT:  ^bb0(%[[IN:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT:    linalg.yield %[[IN]] : f32
// CHECK:       return %{{.*}}, %arg0
func.func @broadcast(%x: tensor<1x5xf32>) -> (tensor<3x4x5xf32>, tensor<1x5xf32>) {
  %0 = "stablehlo.broadcast_in_dim"(%x) <{broadcast_dimensions = array<i64: 0, 2>}> : (tensor<1x5xf32>) -> tensor<3x4x5xf32>
  %1 = "stablehlo.broadcast_in_dim"(%x) <{broadcast_dimensions = array<i64: 0, 1>}> : (tensor<1x5xf32>) -> tensor<1x5xf32>
  return %0, %1 : tensor<3x4x5xf32>, tensor<1x5xf32>
}

// -----

// CHECK-LABEL: func.func @reshape_transpose
// CHECK:       tensor.collapse_shape %arg0 {{\[}}[0, 1], [2]] : tensor<1x4x6xf32> into tensor<4x6xf32>
// CHECK:       tensor.expand_shape %arg0 {{\[}}[0], [1], [2, 3]] output_shape [1, 4, 2, 3] : tensor<1x4x6xf32> into tensor<1x4x2x3xf32>
// A reshape that is neither goes through a flat tensor.
// CHECK:       %[[F:.*]] = tensor.collapse_shape %arg0 {{\[}}[0, 1, 2]] : tensor<1x4x6xf32> into tensor<24xf32>
// CHECK:       tensor.expand_shape %[[F]] {{\[}}[0, 1]] output_shape [3, 8] : tensor<24xf32> into tensor<3x8xf32>
// CHECK:       linalg.transpose ins(%arg0 : tensor<1x4x6xf32>) outs(%{{.*}} : tensor<6x1x4xf32>) permutation = [2, 0, 1]
func.func @reshape_transpose(%x: tensor<1x4x6xf32>) -> (tensor<4x6xf32>, tensor<1x4x2x3xf32>, tensor<3x8xf32>, tensor<6x1x4xf32>) {
  %0 = "stablehlo.reshape"(%x) : (tensor<1x4x6xf32>) -> tensor<4x6xf32>
  %1 = "stablehlo.reshape"(%x) : (tensor<1x4x6xf32>) -> tensor<1x4x2x3xf32>
  %2 = "stablehlo.reshape"(%x) : (tensor<1x4x6xf32>) -> tensor<3x8xf32>
  %3 = "stablehlo.transpose"(%x) <{permutation = array<i64: 2, 0, 1>}> : (tensor<1x4x6xf32>) -> tensor<6x1x4xf32>
  return %0, %1, %2, %3 : tensor<4x6xf32>, tensor<1x4x2x3xf32>, tensor<3x8xf32>, tensor<6x1x4xf32>
}

// -----

// Slices. Start indices are clamped into the operand as StableHLO says:
// statically for constants, with maxsi/minsi otherwise.
// CHECK-LABEL: func.func @slices
// CHECK:       tensor.extract_slice %arg0[0, 2] [4, 3] [1, 2] : tensor<4x8xf32> to tensor<4x3xf32>
// CHECK:       %[[E:.*]] = tensor.extract %arg2[] : tensor<i32>
// CHECK:       %[[W:.*]] = arith.extsi %[[E]] : i32 to i64
// CHECK:       %[[I:.*]] = arith.index_cast %[[W]] : i64 to index
// CHECK:       %[[LO:.*]] = arith.maxsi %[[I]], %c0
// CHECK:       %[[POS:.*]] = arith.minsi %[[LO]], %c6
// CHECK:       tensor.extract_slice %arg0[3, %[[POS]]] [1, 2] [1, 1] : tensor<4x8xf32> to tensor<1x2xf32>
// CHECK:       tensor.insert_slice %arg1 into %arg0[2, %{{.*}}] [2, 2] [1, 1] : tensor<2x2xf32> into tensor<4x8xf32>
// CHECK:       %[[C0:.*]] = tensor.insert_slice %arg1 into %{{.*}}[0, 0] [2, 2] [1, 1] : tensor<2x2xf32> into tensor<2x10xf32>
// CHECK:       %[[C1:.*]] = tensor.insert_slice %arg3 into %[[C0]][0, 2] [2, 8] [1, 1] : tensor<2x8xf32> into tensor<2x10xf32>
// CHECK:       return {{.*}}, %[[C1]]
func.func @slices(%x: tensor<4x8xf32>, %u: tensor<2x2xf32>, %pos: tensor<i32>, %y: tensor<2x8xf32>) -> (tensor<4x3xf32>, tensor<1x2xf32>, tensor<4x8xf32>, tensor<2x10xf32>) {
  %0 = "stablehlo.slice"(%x) <{limit_indices = array<i64: 4, 8>, start_indices = array<i64: 0, 2>, strides = array<i64: 1, 2>}> : (tensor<4x8xf32>) -> tensor<4x3xf32>
  %c7 = "stablehlo.constant"() <{value = dense<7> : tensor<i32>}> : () -> tensor<i32>
  %1 = "stablehlo.dynamic_slice"(%x, %c7, %pos) <{slice_sizes = array<i64: 1, 2>}> : (tensor<4x8xf32>, tensor<i32>, tensor<i32>) -> tensor<1x2xf32>
  %2 = "stablehlo.dynamic_update_slice"(%x, %u, %c7, %pos) : (tensor<4x8xf32>, tensor<2x2xf32>, tensor<i32>, tensor<i32>) -> tensor<4x8xf32>
  %3 = "stablehlo.concatenate"(%u, %y) <{dimension = 1 : i64}> : (tensor<2x2xf32>, tensor<2x8xf32>) -> tensor<2x10xf32>
  return %0, %1, %2, %3 : tensor<4x3xf32>, tensor<1x2xf32>, tensor<4x8xf32>, tensor<2x10xf32>
}

// -----

// dot_general: the named ops where they fit, otherwise a generic over
// (batch, lhs free, rhs free, contracting) with a multiply-add body.
// CHECK-DAG:   #[[L:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG:   #[[R:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG:   #[[O:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @dots
// CHECK:       %[[Z:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<4x5xf32>)
// CHECK:       linalg.matmul ins(%arg0, %arg1 : tensor<4x3xf32>, tensor<3x5xf32>) outs(%[[Z]] : tensor<4x5xf32>)
// CHECK:       linalg.batch_matmul ins(%arg2, %arg3 : tensor<2x4x3xf32>, tensor<2x3x5xf32>)
// CHECK:       linalg.generic {indexing_maps = [#[[L]], #[[R]], #[[O]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%arg4, %arg5 : tensor<2x3x8xf32>, tensor<2x3x6x8xf32>)
// CHECK:         %[[M:.*]] = arith.mulf
// CHECK-NEXT:    arith.addf %{{.*}}, %[[M]] : f32
// Mixed precision: bf16 operands, f32 products.
// CHECK:       linalg.generic
// CHECK:         arith.extf %{{.*}} : bf16 to f32
// CHECK:         arith.extf %{{.*}} : bf16 to f32
// CHECK:         arith.mulf
func.func @dots(%a: tensor<4x3xf32>, %b: tensor<3x5xf32>, %c: tensor<2x4x3xf32>, %d: tensor<2x3x5xf32>, %q: tensor<2x3x8xf32>, %k: tensor<2x3x6x8xf32>, %x: tensor<4x3xbf16>, %y: tensor<3x5xbf16>) -> (tensor<4x5xf32>, tensor<2x4x5xf32>, tensor<2x3x6xf32>, tensor<4x5xf32>) {
  %0 = "stablehlo.dot_general"(%a, %b) <{dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [1], rhs_contracting_dimensions = [0]>, precision_config = [#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]}> : (tensor<4x3xf32>, tensor<3x5xf32>) -> tensor<4x5xf32>
  %1 = "stablehlo.dot_general"(%c, %d) <{dot_dimension_numbers = #stablehlo.dot<lhs_batching_dimensions = [0], rhs_batching_dimensions = [0], lhs_contracting_dimensions = [2], rhs_contracting_dimensions = [1]>}> : (tensor<2x4x3xf32>, tensor<2x3x5xf32>) -> tensor<2x4x5xf32>
  %2 = "stablehlo.dot_general"(%q, %k) <{dot_dimension_numbers = #stablehlo.dot<lhs_batching_dimensions = [0, 1], rhs_batching_dimensions = [0, 1], lhs_contracting_dimensions = [2], rhs_contracting_dimensions = [3]>}> : (tensor<2x3x8xf32>, tensor<2x3x6x8xf32>) -> tensor<2x3x6xf32>
  %3 = "stablehlo.dot_general"(%x, %y) <{dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [1], rhs_contracting_dimensions = [0]>}> : (tensor<4x3xbf16>, tensor<3x5xbf16>) -> tensor<4x5xf32>
  return %0, %1, %2, %3 : tensor<4x5xf32>, tensor<2x4x5xf32>, tensor<2x3x6xf32>, tensor<4x5xf32>
}

// -----

// reduce: a generic with reduction loops over a linalg.fill of the init.
// CHECK-DAG:   #[[IN:.*]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG:   #[[OUT:.*]] = affine_map<(d0, d1, d2) -> (d1)>
// CHECK-LABEL: func.func @reduce
// CHECK:       %[[NINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK:       %[[INIT:.*]] = linalg.fill ins(%[[NINF]] : f32) outs(%{{.*}} : tensor<3xf32>)
// CHECK:       linalg.generic {indexing_maps = [#[[IN]], #[[OUT]]], iterator_types = ["reduction", "parallel", "reduction"]} ins(%arg0 : tensor<2x3x4xf32>) outs(%[[INIT]] : tensor<3xf32>)
// CHECK-NEXT:  ^bb0(%[[X:.*]]: f32, %[[ACC:.*]]: f32):
// CHECK-NEXT:    %[[MAX:.*]] = arith.maximumf %[[ACC]], %[[X]] : f32
// CHECK-NEXT:    linalg.yield %[[MAX]] : f32
// An init value that is not a constant is read from its tensor.
// CHECK:       %[[E:.*]] = tensor.extract %arg1[] : tensor<i32>
// CHECK:       linalg.fill ins(%[[E]] : i32)
// CHECK:         arith.addi
func.func @reduce(%x: tensor<2x3x4xf32>, %init: tensor<i32>, %i: tensor<5xi32>) -> (tensor<3xf32>, tensor<i32>) {
  %ninf = "stablehlo.constant"() <{value = dense<0xFF800000> : tensor<f32>}> : () -> tensor<f32>
  %0 = "stablehlo.reduce"(%x, %ninf) <{dimensions = array<i64: 0, 2>}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %m = "stablehlo.maximum"(%a, %b) : (tensor<f32>, tensor<f32>) -> tensor<f32>
    "stablehlo.return"(%m) : (tensor<f32>) -> ()
  }) : (tensor<2x3x4xf32>, tensor<f32>) -> tensor<3xf32>
  %1 = "stablehlo.reduce"(%i, %init) <{dimensions = array<i64: 0>}> ({
  ^bb0(%a: tensor<i32>, %b: tensor<i32>):
    %s = "stablehlo.add"(%a, %b) : (tensor<i32>, tensor<i32>) -> tensor<i32>
    "stablehlo.return"(%s) : (tensor<i32>) -> ()
  }) : (tensor<5xi32>, tensor<i32>) -> tensor<i32>
  return %0, %1 : tensor<3xf32>, tensor<i32>
}

// -----

// gather (an embedding lookup): the body reads the index, clamps it and
// extracts the operand element.
// CHECK-LABEL: func.func @gather
// CHECK:       linalg.generic {{.*}} outs(%{{.*}} : tensor<4x16xf32>)
// CHECK:         %[[B:.*]] = linalg.index 0 : index
// CHECK:         %[[O:.*]] = linalg.index 1 : index
// CHECK:         %[[T:.*]] = tensor.extract %arg1[%[[B]], %c0] : tensor<4x1xi32>
// CHECK:         arith.minsi %{{.*}}, %c9
// CHECK:         tensor.extract %arg0[%{{.*}}, %[[O]]] : tensor<10x16xf32>
func.func @gather(%table: tensor<10x16xf32>, %ids: tensor<4x1xi32>) -> tensor<4x16xf32> {
  %0 = "stablehlo.gather"(%table, %ids) <{dimension_numbers = #stablehlo.gather<offset_dims = [1], collapsed_slice_dims = [0], start_index_map = [0], index_vector_dim = 1>, indices_are_sorted = false, slice_sizes = array<i64: 1, 16>}> : (tensor<10x16xf32>, tensor<4x1xi32>) -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

// scatter (JAX's `cache.at[1, b, :, pos[b]].set(new)`): loops over the
// updates, skip windows that do not fit, tensor.insert the update.
// CHECK-LABEL: func.func @scatter
// CHECK:       %[[R:.*]] = scf.for %{{.*}} = %c0 to %c3 step %c1 iter_args(%[[C0:.*]] = %arg0) -> (tensor<2x3x2x16x8xf32>)
// CHECK:         scf.for {{.*}} iter_args(%[[C1:.*]] = %[[C0]])
// CHECK:           scf.for {{.*}} iter_args(%[[C2:.*]] = %[[C1]])
// CHECK:             arith.cmpi sle, %{{.*}}, %c15
// CHECK:             %[[NEW:.*]] = scf.if %{{.*}} -> (tensor<2x3x2x16x8xf32>) {
// CHECK:               %[[U:.*]] = tensor.extract %arg2
// CHECK:               %[[INS:.*]] = tensor.insert %[[U]] into %[[C2]]
// CHECK:               scf.yield %[[INS]]
// CHECK:             } else {
// CHECK:               scf.yield %[[C2]]
// CHECK:       return %[[R]]
func.func @scatter(%cache: tensor<2x3x2x16x8xf32>, %idx: tensor<3x3xi32>, %new: tensor<3x2x8xf32>) -> tensor<2x3x2x16x8xf32> {
  %0 = "stablehlo.scatter"(%cache, %idx, %new) <{indices_are_sorted = false, scatter_dimension_numbers = #stablehlo.scatter<update_window_dims = [1, 2], inserted_window_dims = [0, 1, 3], scatter_dims_to_operand_dims = [0, 1, 3], index_vector_dim = 1>, unique_indices = false}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    "stablehlo.return"(%b) : (tensor<f32>) -> ()
  }) : (tensor<2x3x2x16x8xf32>, tensor<3x3xi32>, tensor<3x2x8xf32>) -> tensor<2x3x2x16x8xf32>
  return %0 : tensor<2x3x2x16x8xf32>
}

// -----

// Calls to private functions are inlined and the functions dropped; other
// functions stay.
// CHECK-LABEL: func.func @caller
// CHECK-NOT:   call
// CHECK:       arith.negf
// CHECK:       call @public_helper
// CHECK-NOT:   func.func private @negate
// CHECK:       func.func @public_helper
func.func @caller(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = func.call @negate(%x) : (tensor<4xf32>) -> tensor<4xf32>
  %1 = func.call @public_helper(%0) : (tensor<4xf32>) -> tensor<4xf32>
  return %1 : tensor<4xf32>
}
func.func private @negate(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "stablehlo.negate"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @public_helper(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
