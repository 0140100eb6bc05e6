// RUN: kvc-opt %s -split-input-file --kvc-raise-attention -verify-diagnostics | FileCheck %s

// Attention kvc-raise-attention does not raise stays as it is (the CHECK
// lines find the original cache extension) with a remark naming the part
// that did not match. Contractions that read no cache get no remark.

// Unnormalized exponentials are not a softmax.
// CHECK-LABEL: func.func @exp_without_sum
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @exp_without_sum(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>)
    -> (tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x1x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>) outs(%sz : tensor<1x2x1x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x6xf32>
  %x = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x1x6xf32>) outs(%es : tensor<1x2x1x6xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %r = arith.mulf %a, %c : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x6xf32>
  // expected-remark @below {{kvc-raise-attention: softmax not recognized: the probabilities are not a quotient of exponentials and their sum}}
  %p = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%x : tensor<1x2x1x6xf32>) outs(%es : tensor<1x2x1x6xf32>) {
  ^bb0(%a: f32, %o: f32):
    %e = math.exp %a : f32
    linalg.yield %e : f32
  } -> tensor<1x2x1x6xf32>
  %eo = tensor.empty() : tensor<1x2x1x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32>
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x1x6xf32>, tensor<1x2x6x8xf32>) outs(%oz : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x8xf32>
  return %o, %kc, %vc : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>
}

// -----

// A softmax over the query positions instead of the tokens.
// CHECK-LABEL: func.func @softmax_over_queries
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @softmax_over_queries(%q: tensor<1x2x2x8xf32>, %k: tensor<1x2x2x8xf32>, %v: tensor<1x2x2x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>)
    -> (tensor<1x2x2x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x2x8xf32>) -> tensor<1x2x7x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xf32>, tensor<1x2x2x8xf32>) -> tensor<1x2x7x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x2x7xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x2x7xf32>) -> tensor<1x2x2x7xf32>
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x2x8xf32>, tensor<1x2x7x8xf32>) outs(%sz : tensor<1x2x2x7xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x7xf32>
  %x = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x2x7xf32>) outs(%es : tensor<1x2x2x7xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %r = arith.mulf %a, %c : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x7xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<1x2x2x7xf32>) outs(%es : tensor<1x2x2x7xf32>) -> tensor<1x2x2x7xf32>
  %eo = tensor.empty() : tensor<1x2x2x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x2x8xf32>) -> tensor<1x2x2x8xf32>
  // expected-remark @below {{kvc-raise-attention: softmax not recognized: it does not normalize over the cache tokens}}
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x2x7xf32>, tensor<1x2x7x8xf32>) outs(%oz : tensor<1x2x2x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x8xf32>
  return %o, %kc, %vc : tensor<1x2x2x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x8xf32>
}

// -----

// Scores scaled by a runtime value: kvc.attend's scale is a constant.
// CHECK-LABEL: func.func @scale_by_argument
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @scale_by_argument(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>, %t: f32)
    -> (tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x1x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>) outs(%sz : tensor<1x2x1x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x6xf32>
  %x = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x1x6xf32>) outs(%es : tensor<1x2x1x6xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = arith.mulf %a, %t : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x6xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x1x6xf32>) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  %eo = tensor.empty() : tensor<1x2x1x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32>
  // expected-remark @below {{kvc-raise-attention: scale not recognized: scores are multiplied by a value that is not a constant}}
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x1x6xf32>, tensor<1x2x6x8xf32>) outs(%oz : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x8xf32>
  return %o, %kc, %vc : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>
}

// -----

// A query that may not see its own token is neither causal nor full
// attention.
// CHECK-LABEL: func.func @mask_hides_own_token
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @mask_hides_own_token(%q: tensor<1x2x2x8xf32>, %k: tensor<1x2x2x8xf32>, %v: tensor<1x2x2x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>)
    -> (tensor<1x2x2x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x2x8xf32>) -> tensor<1x2x7x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xf32>, tensor<1x2x2x8xf32>) -> tensor<1x2x7x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x2x7xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x2x7xf32>) -> tensor<1x2x2x7xf32>
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x2x8xf32>, tensor<1x2x7x8xf32>) outs(%sz : tensor<1x2x2x7xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x7xf32>
  %x = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x2x7xf32>) outs(%es : tensor<1x2x2x7xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %sc = arith.mulf %a, %c : f32
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %c5 = arith.constant 5 : index
    %qpos = arith.addi %i, %c5 : index
    %keep = arith.cmpi slt, %j, %qpos : index
    %ninf = arith.constant 0xFF800000 : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x7xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x2x7xf32>) outs(%es : tensor<1x2x2x7xf32>) -> tensor<1x2x2x7xf32>
  %eo = tensor.empty() : tensor<1x2x2x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x2x8xf32>) -> tensor<1x2x2x8xf32>
  // expected-remark @below {{kvc-raise-attention: mask not recognized: each query sees the keys up to -1 position(s) after its own, which is neither causal nor full attention}}
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x2x7xf32>, tensor<1x2x7x8xf32>) outs(%oz : tensor<1x2x2x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x8xf32>
  return %o, %kc, %vc : tensor<1x2x2x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x8xf32>
}

// -----

// A dynamic-update-slice into a buffer read whole without a mask: the
// unwritten slots would take part in the softmax.
// CHECK-LABEL: func.func @unmasked_buffer
// CHECK: tensor.insert_slice
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @unmasked_buffer(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k: tensor<1x2x16x8xf32>, %past_v: tensor<1x2x16x8xf32>, %pos: index)
    -> (tensor<1x2x1x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>) {
  %kc = tensor.insert_slice %k into %past_k[0, 0, %pos, 0] [1, 2, 1, 8] [1, 1, 1, 1] : tensor<1x2x1x8xf32> into tensor<1x2x16x8xf32>
  %vc = tensor.insert_slice %v into %past_v[0, 0, %pos, 0] [1, 2, 1, 8] [1, 1, 1, 1] : tensor<1x2x1x8xf32> into tensor<1x2x16x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x1x16xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x1x16xf32>) -> tensor<1x2x1x16xf32>
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x1x8xf32>, tensor<1x2x16x8xf32>) outs(%sz : tensor<1x2x1x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x16xf32>
  %x = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x1x16xf32>) outs(%es : tensor<1x2x1x16xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %r = arith.mulf %a, %c : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x16xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x1x16xf32>) outs(%es : tensor<1x2x1x16xf32>) -> tensor<1x2x1x16xf32>
  %eo = tensor.empty() : tensor<1x2x1x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32>
  // expected-remark @below {{kvc-raise-attention: mask not recognized: the cache buffer has slots after the new tokens that it does not hide}}
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x1x16xf32>, tensor<1x2x16x8xf32>) outs(%oz : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x8xf32>
  return %o, %kc, %vc : tensor<1x2x1x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>
}

// -----

// A sliding window that lets a query see the later tokens of its chunk.
// CHECK-LABEL: func.func @window_without_causal
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @window_without_causal(%q: tensor<1x2x2x8xf32>, %k: tensor<1x2x2x8xf32>, %v: tensor<1x2x2x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>)
    -> (tensor<1x2x2x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x2x8xf32>) -> tensor<1x2x7x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xf32>, tensor<1x2x2x8xf32>) -> tensor<1x2x7x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x2x7xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x2x7xf32>) -> tensor<1x2x2x7xf32>
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x2x8xf32>, tensor<1x2x7x8xf32>) outs(%sz : tensor<1x2x2x7xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x7xf32>
  %x = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x2x7xf32>) outs(%es : tensor<1x2x2x7xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %sc = arith.mulf %a, %c : f32
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %c5 = arith.constant 5 : index
    %qpos = arith.addi %i, %c5 : index
    %d = arith.subi %qpos, %j : index
    %c3 = arith.constant 3 : index
    %keep = arith.cmpi slt, %d, %c3 : index
    %ninf = arith.constant 0xFF800000 : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x7xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x2x7xf32>) outs(%es : tensor<1x2x2x7xf32>) -> tensor<1x2x2x7xf32>
  %eo = tensor.empty() : tensor<1x2x2x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x2x8xf32>) -> tensor<1x2x2x8xf32>
  // expected-remark @below {{kvc-raise-attention: mask not recognized: a sliding window without a causal mask}}
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x2x7xf32>, tensor<1x2x7x8xf32>) outs(%oz : tensor<1x2x2x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x8xf32>
  return %o, %kc, %vc : tensor<1x2x2x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x8xf32>
}

// -----

// Soft-capped scores (tanh) are not raised.
// CHECK-LABEL: func.func @soft_capping
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @soft_capping(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>)
    -> (tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x1x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>) outs(%sz : tensor<1x2x1x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x6xf32>
  %x = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x1x6xf32>) outs(%es : tensor<1x2x1x6xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %sc = arith.mulf %a, %c : f32
    %t = math.tanh %sc : f32
    linalg.yield %t : f32
  } -> tensor<1x2x1x6xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x1x6xf32>) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  %eo = tensor.empty() : tensor<1x2x1x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32>
  // expected-remark @below {{kvc-raise-attention: scores not recognized: the softmax input goes through 'math.tanh'}}
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x1x6xf32>, tensor<1x2x6x8xf32>) outs(%oz : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x8xf32>
  return %o, %kc, %vc : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>
}

// -----

// Three query positions per head for two new tokens: the queries are not
// the new tokens, which kvc.attend assumes.
// CHECK-LABEL: func.func @query_length_mismatch
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @query_length_mismatch(%q: tensor<1x2x3x8xf32>, %k: tensor<1x2x2x8xf32>, %v: tensor<1x2x2x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>)
    -> (tensor<1x2x3x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x2x8xf32>) -> tensor<1x2x7x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xf32>, tensor<1x2x2x8xf32>) -> tensor<1x2x7x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x3x7xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x3x7xf32>) -> tensor<1x2x3x7xf32>
  // expected-remark @below {{kvc-raise-attention: queries not recognized: 3 query positions per head, but the cache gets 2 new tokens}}
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x3x8xf32>, tensor<1x2x7x8xf32>) outs(%sz : tensor<1x2x3x7xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x3x7xf32>
  %p = linalg.softmax dimension(3) ins(%s : tensor<1x2x3x7xf32>) outs(%es : tensor<1x2x3x7xf32>) -> tensor<1x2x3x7xf32>
  %eo = tensor.empty() : tensor<1x2x3x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x3x8xf32>) -> tensor<1x2x3x8xf32>
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x3x7xf32>, tensor<1x2x7x8xf32>) outs(%oz : tensor<1x2x3x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x3x8xf32>
  return %o, %kc, %vc : tensor<1x2x3x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x8xf32>
}

// -----

// The extended keys also feed another computation, which would lose them.
// CHECK-LABEL: func.func @cache_used_elsewhere
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @cache_used_elsewhere(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>)
    -> (tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %kk = arith.mulf %kc, %kc : tensor<1x2x6x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x1x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  // expected-remark @below {{kvc-raise-attention: cache not recognized: the past or extended keys/values are used outside this attention}}
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>) outs(%sz : tensor<1x2x1x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x6xf32>
  %p = linalg.softmax dimension(3) ins(%s : tensor<1x2x1x6xf32>) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  %eo = tensor.empty() : tensor<1x2x1x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32>
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x1x6xf32>, tensor<1x2x6x8xf32>) outs(%oz : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x8xf32>
  return %o, %kc, %vc, %kk : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>
}

// -----

// A function with a caller keeps its signature, and so its attention.
// CHECK-LABEL: func.func @called
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @called(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>)
    -> (tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x1x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  // expected-remark @below {{kvc-raise-attention: function signature not rewritten: it has callers}}
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>) outs(%sz : tensor<1x2x1x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x6xf32>
  %p = linalg.softmax dimension(3) ins(%s : tensor<1x2x1x6xf32>) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  %eo = tensor.empty() : tensor<1x2x1x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32>
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x1x6xf32>, tensor<1x2x6x8xf32>) outs(%oz : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x8xf32>
  return %o, %kc, %vc : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>
}

func.func @caller(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>) -> tensor<1x2x1x8xf32> {
  %o, %kc, %vc = func.call @called(%q, %k, %v, %past_k, %past_v) : (tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>) -> (tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>)
  return %o : tensor<1x2x1x8xf32>
}

// -----

// Dynamic batch: the matcher reports instead of guessing sizes.
// CHECK-LABEL: func.func @dynamic_batch
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @dynamic_batch(%q: tensor<?x2x1x8xf32>, %k: tensor<?x2x1x8xf32>, %v: tensor<?x2x1x8xf32>,
    %past_k: tensor<?x2x5x8xf32>, %past_v: tensor<?x2x5x8xf32>, %s0: tensor<?x2x1x6xf32>, %o0: tensor<?x2x1x8xf32>)
    -> (tensor<?x2x1x8xf32>, tensor<?x2x6x8xf32>, tensor<?x2x6x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<?x2x5x8xf32>, tensor<?x2x1x8xf32>) -> tensor<?x2x6x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<?x2x5x8xf32>, tensor<?x2x1x8xf32>) -> tensor<?x2x6x8xf32>
  %zero = arith.constant 0.0 : f32
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<?x2x1x6xf32>) -> tensor<?x2x1x6xf32>
  // expected-remark @below {{kvc-raise-attention: QKᵀ not recognized: dynamic shapes are not supported}}
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<?x2x1x8xf32>, tensor<?x2x6x8xf32>) outs(%sz : tensor<?x2x1x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<?x2x1x6xf32>
  %p = linalg.softmax dimension(3) ins(%s : tensor<?x2x1x6xf32>) outs(%s0 : tensor<?x2x1x6xf32>) -> tensor<?x2x1x6xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<?x2x1x8xf32>) -> tensor<?x2x1x8xf32>
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<?x2x1x6xf32>, tensor<?x2x6x8xf32>) outs(%oz : tensor<?x2x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<?x2x1x8xf32>
  return %o, %kc, %vc : tensor<?x2x1x8xf32>, tensor<?x2x6x8xf32>, tensor<?x2x6x8xf32>
}

// -----

// Attention weights returned without a P·V.
// CHECK-LABEL: func.func @no_values
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
func.func @no_values(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %past_k: tensor<1x2x5x8xf32>)
    -> (tensor<1x2x1x6xf32>, tensor<1x2x6x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x1x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  // expected-remark @below {{kvc-raise-attention: values not recognized: no P·V contraction with a value cache reads these scores}}
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>) outs(%sz : tensor<1x2x1x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x6xf32>
  %p = linalg.softmax dimension(3) ins(%s : tensor<1x2x1x6xf32>) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  return %p, %kc : tensor<1x2x1x6xf32>, tensor<1x2x6x8xf32>
}

// -----

// Values with another head dimension than the keys (one kvc cache has one).
// CHECK-LABEL: func.func @value_head_dim_differs
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @value_head_dim_differs(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x4xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x4xf32>)
    -> (tensor<1x2x1x4xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x4xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x6x4xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x1x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  // expected-remark @below {{kvc-raise-attention: cache not recognized: past keys and values have different types}}
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>) outs(%sz : tensor<1x2x1x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x6xf32>
  %p = linalg.softmax dimension(3) ins(%s : tensor<1x2x1x6xf32>) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  %eo = tensor.empty() : tensor<1x2x1x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x1x6xf32>, tensor<1x2x6x4xf32>) outs(%oz : tensor<1x2x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x4xf32>
  return %o, %kc, %vc : tensor<1x2x1x4xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x4xf32>
}

// -----

// A contraction that reads no cache is not an attention site: no remark.
// CHECK-LABEL: func.func @plain_matmul
// CHECK: linalg.matmul
func.func @plain_matmul(%a: tensor<4x8xf32>, %b: tensor<8x16xf32>) -> tensor<4x16xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x16xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x16xf32>) -> tensor<4x16xf32>
  %c = linalg.matmul ins(%a, %b : tensor<4x8xf32>, tensor<8x16xf32>) outs(%z : tensor<4x16xf32>) -> tensor<4x16xf32>
  return %c : tensor<4x16xf32>
}

// -----

// A JAX-style wrapped position clamped to [0, 14] instead of [0, 16 - 1]:
// the write position is not the position the mask compares with, so the
// unwritten slots are not known to be hidden.
// CHECK-LABEL: func.func @clamp_bound_not_buffer_end
// CHECK: tensor.insert_slice
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#scalar4 = affine_map<(b, h, i, j) -> ()>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
#none = affine_map<() -> ()>
func.func @clamp_bound_not_buffer_end(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k: tensor<1x2x16x8xf32>, %past_v: tensor<1x2x16x8xf32>, %pos: tensor<i32>)
    -> (tensor<1x2x1x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>) {
  %zero_i = arith.constant dense<0> : tensor<i32>
  %extent = arith.constant dense<16> : tensor<i32>
  %eb = tensor.empty() : tensor<i1>
  %ei = tensor.empty() : tensor<i32>
  %neg = linalg.generic {indexing_maps = [#none, #none, #none], iterator_types = []}
      ins(%pos, %zero_i : tensor<i32>, tensor<i32>) outs(%eb : tensor<i1>) {
  ^bb0(%a: i32, %b: i32, %o: i1):
    %r = arith.cmpi slt, %a, %b : i32
    linalg.yield %r : i1
  } -> tensor<i1>
  %shifted = linalg.generic {indexing_maps = [#none, #none, #none], iterator_types = []}
      ins(%pos, %extent : tensor<i32>, tensor<i32>) outs(%ei : tensor<i32>) {
  ^bb0(%a: i32, %b: i32, %o: i32):
    %r = arith.addi %a, %b : i32
    linalg.yield %r : i32
  } -> tensor<i32>
  %wrapped = linalg.generic {indexing_maps = [#none, #none, #none, #none], iterator_types = []}
      ins(%neg, %shifted, %pos : tensor<i1>, tensor<i32>, tensor<i32>) outs(%ei : tensor<i32>) {
  ^bb0(%c: i1, %a: i32, %b: i32, %o: i32):
    %r = arith.select %c, %a, %b : i32
    linalg.yield %r : i32
  } -> tensor<i32>
  %wpos = tensor.extract %wrapped[] : tensor<i32>
  %wpos64 = arith.extsi %wpos : i32 to i64
  %widx = arith.index_cast %wpos64 : i64 to index
  %c0 = arith.constant 0 : index
  %c14 = arith.constant 14 : index
  %lo = arith.maxsi %widx, %c0 : index
  %at = arith.minsi %lo, %c14 : index
  %kc = tensor.insert_slice %k into %past_k[0, 0, %at, 0] [1, 2, 1, 8] [1, 1, 1, 1] : tensor<1x2x1x8xf32> into tensor<1x2x16x8xf32>
  %vc = tensor.insert_slice %v into %past_v[0, 0, %at, 0] [1, 2, 1, 8] [1, 1, 1, 1] : tensor<1x2x1x8xf32> into tensor<1x2x16x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x1x16xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x1x16xf32>) -> tensor<1x2x1x16xf32>
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x1x8xf32>, tensor<1x2x16x8xf32>) outs(%sz : tensor<1x2x1x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x16xf32>
  %x = linalg.generic {indexing_maps = [#id4, #scalar4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s, %pos : tensor<1x2x1x16xf32>, tensor<i32>) outs(%es : tensor<1x2x1x16xf32>) {
  ^bb0(%a: f32, %p: i32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %sc = arith.mulf %a, %c : f32
    %j = linalg.index 3 : index
    %j32 = arith.index_cast %j : index to i32
    %keep = arith.cmpi sle, %j32, %p : i32
    %ninf = arith.constant 0xFF800000 : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x16xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x1x16xf32>) outs(%es : tensor<1x2x1x16xf32>) -> tensor<1x2x1x16xf32>
  %eo = tensor.empty() : tensor<1x2x1x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32>
  // expected-remark @below {{kvc-raise-attention: mask not recognized: the cache buffer has slots after the new tokens that it does not hide}}
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x1x16xf32>, tensor<1x2x16x8xf32>) outs(%oz : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x8xf32>
  return %o, %kc, %vc : tensor<1x2x1x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>
}
