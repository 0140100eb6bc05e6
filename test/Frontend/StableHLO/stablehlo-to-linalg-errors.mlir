// RUN: kvc-opt --allow-unregistered-dialect --kvc-stablehlo-to-linalg -split-input-file -verify-diagnostics %s

func.func @unknown_op(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{unsupported op 'stablehlo.custom_call'}}
  %0 = "stablehlo.custom_call"(%x) <{call_target_name = "foo"}> : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @unknown_dialect_op(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{unsupported op 'chlo.erf'}}
  %0 = "chlo.erf"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @unknown_attribute(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{unsupported attribute 'result_accuracy' on 'stablehlo.exponential'}}
  %0 = "stablehlo.exponential"(%x) <{result_accuracy = 1 : i32}> : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @metadata_attribute_is_fine(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "stablehlo.negate"(%x) {mhlo.sharding = "{replicated}"} : (tensor<4xf32>) -> tensor<4xf32>
  // expected-error @+1 {{unsupported op 'stablehlo.erf'}}
  %1 = "stablehlo.erf"(%0) : (tensor<4xf32>) -> tensor<4xf32>
  return %1 : tensor<4xf32>
}

// -----

func.func @dot_missing_comma(%a: tensor<4x3xf32>, %b: tensor<3x5xf32>) -> tensor<4x5xf32> {
  // expected-error @+1 {{malformed attribute 'dot_dimension_numbers' (#stablehlo.dot<lhs_contracting_dimensions = [1 0], rhs_contracting_dimensions = [0]>): expected ',', found '0' at column 37}}
  %0 = "stablehlo.dot_general"(%a, %b) <{dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [1 0], rhs_contracting_dimensions = [0]>}> : (tensor<4x3xf32>, tensor<3x5xf32>) -> tensor<4x5xf32>
  return %0 : tensor<4x5xf32>
}

// -----

func.func @dot_unknown_field(%a: tensor<4x3xf32>, %b: tensor<3x5xf32>) -> tensor<4x5xf32> {
  // expected-error @+1 {{unknown field 'lhs_contract'}}
  %0 = "stablehlo.dot_general"(%a, %b) <{dot_dimension_numbers = #stablehlo.dot<lhs_contract = [1], rhs_contracting_dimensions = [0]>}> : (tensor<4x3xf32>, tensor<3x5xf32>) -> tensor<4x5xf32>
  return %0 : tensor<4x5xf32>
}

// -----

func.func @dot_huge_integer(%a: tensor<4x3xf32>, %b: tensor<3x5xf32>) -> tensor<4x5xf32> {
  // expected-error @+1 {{integer '99999999999999999999' out of range}}
  %0 = "stablehlo.dot_general"(%a, %b) <{dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [99999999999999999999], rhs_contracting_dimensions = [0]>}> : (tensor<4x3xf32>, tensor<3x5xf32>) -> tensor<4x5xf32>
  return %0 : tensor<4x5xf32>
}

// -----

func.func @dot_wrong_mnemonic(%a: tensor<4x3xf32>, %b: tensor<3x5xf32>) -> tensor<4x5xf32> {
  // expected-error @+1 {{expected 'dot', found 'gather'}}
  %0 = "stablehlo.dot_general"(%a, %b) <{dot_dimension_numbers = #stablehlo.gather<offset_dims = [1]>}> : (tensor<4x3xf32>, tensor<3x5xf32>) -> tensor<4x5xf32>
  return %0 : tensor<4x5xf32>
}

// -----

func.func @dot_sizes(%a: tensor<4x3xf32>, %b: tensor<2x5xf32>) -> tensor<4x5xf32> {
  // expected-error @+1 {{contracting dimensions 1 and 0 have different sizes}}
  %0 = "stablehlo.dot_general"(%a, %b) <{dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [1], rhs_contracting_dimensions = [0]>}> : (tensor<4x3xf32>, tensor<2x5xf32>) -> tensor<4x5xf32>
  return %0 : tensor<4x5xf32>
}

// -----

func.func @dot_not_opaque(%a: tensor<4x3xf32>, %b: tensor<3x5xf32>) -> tensor<4x5xf32> {
  // expected-error @+1 {{attribute 'dot_dimension_numbers' is not a #stablehlo attribute: "dot"}}
  %0 = "stablehlo.dot_general"(%a, %b) <{dot_dimension_numbers = "dot"}> : (tensor<4x3xf32>, tensor<3x5xf32>) -> tensor<4x5xf32>
  return %0 : tensor<4x5xf32>
}

// -----

func.func @bad_precision(%a: tensor<4x3xf32>, %b: tensor<3x5xf32>) -> tensor<4x5xf32> {
  // expected-error @+1 {{unknown precision 'FAST' (expected one of DEFAULT, HIGH, HIGHEST)}}
  %0 = "stablehlo.dot_general"(%a, %b) <{dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [1], rhs_contracting_dimensions = [0]>, precision_config = [#stablehlo<precision FAST>]}> : (tensor<4x3xf32>, tensor<3x5xf32>) -> tensor<4x5xf32>
  return %0 : tensor<4x5xf32>
}

// -----

func.func @bad_direction(%a: tensor<4xi32>) -> tensor<4xi1> {
  // expected-error @+1 {{malformed attribute 'comparison_direction' (#stablehlo<comparison_direction LTE>): unknown comparison_direction 'LTE' (expected one of EQ, NE, GE, GT, LE, LT)}}
  %0 = "stablehlo.compare"(%a, %a) <{comparison_direction = #stablehlo<comparison_direction LTE>}> : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi1>
  return %0 : tensor<4xi1>
}

// -----

func.func @direction_trailing_text(%a: tensor<4xi32>) -> tensor<4xi1> {
  // expected-error @+1 {{unexpected trailing text, found 'SIGNED' at column 25}}
  %0 = "stablehlo.compare"(%a, %a) <{comparison_direction = #stablehlo<comparison_direction LT SIGNED>}> : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi1>
  return %0 : tensor<4xi1>
}

// -----

func.func @missing_direction(%a: tensor<4xi32>) -> tensor<4xi1> {
  // expected-error @+1 {{missing attribute 'comparison_direction'}}
  %0 = "stablehlo.compare"(%a, %a) : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi1>
  return %0 : tensor<4xi1>
}

// -----

func.func @dynamic_shape(%a: tensor<?xf32>) -> tensor<?xf32> {
  // expected-error @+1 {{dynamic shape 'tensor<?xf32>' is not supported}}
  %0 = "stablehlo.negate"(%a) : (tensor<?xf32>) -> tensor<?xf32>
  return %0 : tensor<?xf32>
}

// -----

func.func @unsigned(%a: tensor<4xui32>) -> tensor<4xui32> {
  // expected-error @+1 {{element type 'ui32' is not supported}}
  %0 = "stablehlo.add"(%a, %a) : (tensor<4xui32>, tensor<4xui32>) -> tensor<4xui32>
  return %0 : tensor<4xui32>
}

// -----

func.func @float_only(%a: tensor<4xi32>) -> tensor<4xi32> {
  // expected-error @+1 {{element type 'i32' is not supported (expected float)}}
  %0 = "stablehlo.sine"(%a) : (tensor<4xi32>) -> tensor<4xi32>
  return %0 : tensor<4xi32>
}

// -----

func.func @implicit_broadcast(%a: tensor<4xf32>, %b: tensor<f32>) -> tensor<4xf32> {
  // expected-error @+1 {{operand of type 'tensor<f32>' does not have the result's shape 'tensor<4xf32>'}}
  %0 = "stablehlo.add"(%a, %b) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @reduce_body(%x: tensor<4xf32>, %init: tensor<f32>) -> tensor<f32> {
  // expected-error @+1 {{unsupported body: expected one op combining the two arguments}}
  %0 = "stablehlo.reduce"(%x, %init) <{dimensions = array<i64: 0>}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %s = "stablehlo.add"(%a, %b) : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %t = "stablehlo.add"(%s, %b) : (tensor<f32>, tensor<f32>) -> tensor<f32>
    "stablehlo.return"(%t) : (tensor<f32>) -> ()
  }) : (tensor<4xf32>, tensor<f32>) -> tensor<f32>
  return %0 : tensor<f32>
}

// -----

func.func @variadic_reduce(%x: tensor<4xf32>, %i: tensor<4xi32>, %a: tensor<f32>, %b: tensor<i32>) -> (tensor<f32>, tensor<i32>) {
  // expected-error @+1 {{only reductions of one tensor are supported}}
  %0:2 = "stablehlo.reduce"(%x, %i, %a, %b) <{dimensions = array<i64: 0>}> ({
  ^bb0(%p: tensor<f32>, %q: tensor<i32>, %r: tensor<f32>, %s: tensor<i32>):
    "stablehlo.return"(%p, %q) : (tensor<f32>, tensor<i32>) -> ()
  }) : (tensor<4xf32>, tensor<4xi32>, tensor<f32>, tensor<i32>) -> (tensor<f32>, tensor<i32>)
  return %0#0, %0#1 : tensor<f32>, tensor<i32>
}

// -----

func.func @broadcast_missing_dims(%x: tensor<4xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{missing attribute 'broadcast_dimensions'}}
  %0 = "stablehlo.broadcast_in_dim"(%x) : (tensor<4xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

func.func @gather_bad_map(%t: tensor<10x16xf32>, %ids: tensor<4x1xi32>) -> tensor<4x16xf32> {
  // expected-error @+1 {{start_index_map does not match the index vector}}
  %0 = "stablehlo.gather"(%t, %ids) <{dimension_numbers = #stablehlo.gather<offset_dims = [1], collapsed_slice_dims = [0], start_index_map = [0, 1], index_vector_dim = 1>, slice_sizes = array<i64: 1, 16>}> : (tensor<10x16xf32>, tensor<4x1xi32>) -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

func.func @gather_missing_field(%t: tensor<10x16xf32>, %ids: tensor<4x1xi32>) -> tensor<4x16xf32> {
  // expected-error @+1 {{missing field 'index_vector_dim'}}
  %0 = "stablehlo.gather"(%t, %ids) <{dimension_numbers = #stablehlo.gather<offset_dims = [1], collapsed_slice_dims = [0], start_index_map = [0]>, slice_sizes = array<i64: 1, 16>}> : (tensor<10x16xf32>, tensor<4x1xi32>) -> tensor<4x16xf32>
  return %0 : tensor<4x16xf32>
}

// -----

func.func @scatter_bad_char(%c: tensor<2x16xf32>, %idx: tensor<3x1xi32>, %u: tensor<3x16xf32>) -> tensor<2x16xf32> {
  // expected-error @+1 {{expected an integer, found invalid character '?' at column 118}}
  %0 = "stablehlo.scatter"(%c, %idx, %u) <{scatter_dimension_numbers = #stablehlo.scatter<update_window_dims = [1], inserted_window_dims = [0], scatter_dims_to_operand_dims = [0], index_vector_dim = ?>}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    "stablehlo.return"(%b) : (tensor<f32>) -> ()
  }) : (tensor<2x16xf32>, tensor<3x1xi32>, tensor<3x16xf32>) -> tensor<2x16xf32>
  return %0 : tensor<2x16xf32>
}

// -----

func.func @slice_out_of_range(%x: tensor<4x8xf32>) -> tensor<4x3xf32> {
  // expected-error @+1 {{slice of dimension 1 [6:9:1] does not fit the operand or result}}
  %0 = "stablehlo.slice"(%x) <{limit_indices = array<i64: 4, 9>, start_indices = array<i64: 0, 6>, strides = array<i64: 1, 1>}> : (tensor<4x8xf32>) -> tensor<4x3xf32>
  return %0 : tensor<4x3xf32>
}

// -----

func.func @reduce_empty_body(%x: tensor<4xf32>, %init: tensor<f32>) -> tensor<f32> {
  // expected-error @+1 {{unsupported body: expected 'stablehlo.return' of one value}}
  %0 = "stablehlo.reduce"(%x, %init) <{dimensions = array<i64: 0>}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
  }) : (tensor<4xf32>, tensor<f32>) -> tensor<f32>
  return %0 : tensor<f32>
}

// -----

func.func @scatter_batching(%c: tensor<2x16xf32>, %idx: tensor<3x1xi32>, %u: tensor<3x16xf32>) -> tensor<2x16xf32> {
  // expected-error @+1 {{scatter with batching dimensions is not supported}}
  %0 = "stablehlo.scatter"(%c, %idx, %u) <{scatter_dimension_numbers = #stablehlo.scatter<update_window_dims = [1], inserted_window_dims = [0], input_batching_dims = [1], scatter_indices_batching_dims = [0], scatter_dims_to_operand_dims = [0], index_vector_dim = 1>}> ({
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    "stablehlo.return"(%b) : (tensor<f32>) -> ()
  }) : (tensor<2x16xf32>, tensor<3x1xi32>, tensor<3x16xf32>) -> tensor<2x16xf32>
  return %0 : tensor<2x16xf32>
}
