// RUN: kvc-opt %s -split-input-file --kvc-raise-attention -verify-diagnostics | FileCheck %s

// kvc-raise-attention on a decode step for any context length: the past
// keys and values have a dynamic token count (tensor<1x2x?x8xf32>), and so
// do the scores, the mask and the probabilities. Only the token count may be
// dynamic; the mask operand takes its size from a tensor the mask reads.

// Decode, BHSD, GQA (4 query heads over 2 KV heads) by linalg.broadcast +
// collapse_shape, QKᵀ and P·V as linalg.batch_matmul on heads fused with the
// batch, an additive mask argument broadcast over the heads, linalg.softmax.
// The mask has the token count by the IR's semantics (it is added to the
// scores): it becomes the mask operand as it is, with no remark.
// CHECK-LABEL: func.func @decode_dynamic_past
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x1x8xf32>, %[[K:.*]]: tensor<1x2x1x8xf32>, %[[V:.*]]: tensor<1x2x1x8xf32>, %[[C:.*]]: !kvc.cache<1x2x?x8xf32> {kvc.layer = 0 : i64}, %[[M:.*]]: tensor<1x1x1x?xf32>)
// CHECK-SAME: -> (tensor<1x4x1x8xf32>, !kvc.cache<1x2x?x8xf32>)
// CHECK-NEXT: %[[C1:.*]] = kvc.append %[[C]], %[[K]], %[[V]] : !kvc.cache<1x2x?x8xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>
// CHECK-NEXT: %[[O:.*]] = kvc.attend %[[Q]], %[[C1]] mask(%[[M]] : tensor<1x1x1x?xf32>) {scale = 0.353553385 : f32} : tensor<1x4x1x8xf32>, !kvc.cache<1x2x?x8xf32> -> tensor<1x4x1x8xf32>
// CHECK-NEXT: return %[[O]], %[[C1]]
#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#bh4 = affine_map<(d0, d1, d2, d3) -> (d0, 0, d2, d3)>
func.func @decode_dynamic_past(%q: tensor<1x4x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k: tensor<1x2x?x8xf32>, %past_v: tensor<1x2x?x8xf32>, %mask: tensor<1x1x1x?xf32>)
    -> (tensor<1x4x1x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) {
  %c2 = arith.constant 2 : index
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x?x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x?x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x?x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x?x8xf32>
  %n = tensor.dim %kc, %c2 : tensor<1x2x?x8xf32>
  %e5 = tensor.empty(%n) : tensor<1x2x2x?x8xf32>
  %kb = linalg.broadcast ins(%kc : tensor<1x2x?x8xf32>) outs(%e5 : tensor<1x2x2x?x8xf32>) dimensions = [2]
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<1x2x2x?x8xf32> into tensor<1x4x?x8xf32>
  %vb = linalg.broadcast ins(%vc : tensor<1x2x?x8xf32>) outs(%e5 : tensor<1x2x2x?x8xf32>) dimensions = [2]
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : tensor<1x2x2x?x8xf32> into tensor<1x4x?x8xf32>
  %et = tensor.empty(%n) : tensor<1x4x8x?xf32>
  %kt = linalg.transpose ins(%kr : tensor<1x4x?x8xf32>) outs(%et : tensor<1x4x8x?xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x4x1x8xf32> into tensor<4x1x8xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x4x8x?xf32> into tensor<4x8x?xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty(%n) : tensor<4x1x?xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<4x1x?xf32>) -> tensor<4x1x?xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<4x1x8xf32>, tensor<4x8x?xf32>) outs(%sz : tensor<4x1x?xf32>) -> tensor<4x1x?xf32>
  %s4 = tensor.expand_shape %s [[0, 1], [2], [3]] output_shape [1, 4, 1, %n] : tensor<4x1x?xf32> into tensor<1x4x1x?xf32>
  %e4 = tensor.empty(%n) : tensor<1x4x1x?xf32>
  %masked = linalg.generic {indexing_maps = [#id4, #bh4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s4, %mask : tensor<1x4x1x?xf32>, tensor<1x1x1x?xf32>) outs(%e4 : tensor<1x4x1x?xf32>) {
  ^bb0(%a: f32, %m: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %x = arith.mulf %a, %c : f32
    %y = arith.addf %x, %m : f32
    linalg.yield %y : f32
  } -> tensor<1x4x1x?xf32>
  %p = linalg.softmax dimension(3) ins(%masked : tensor<1x4x1x?xf32>) outs(%e4 : tensor<1x4x1x?xf32>) -> tensor<1x4x1x?xf32>
  %p3 = tensor.collapse_shape %p [[0, 1], [2], [3]] : tensor<1x4x1x?xf32> into tensor<4x1x?xf32>
  %v3 = tensor.collapse_shape %vr [[0, 1], [2], [3]] : tensor<1x4x?x8xf32> into tensor<4x?x8xf32>
  %eo = tensor.empty() : tensor<4x1x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<4x1x8xf32>) -> tensor<4x1x8xf32>
  %o = linalg.batch_matmul ins(%p3, %v3 : tensor<4x1x?xf32>, tensor<4x?x8xf32>) outs(%oz : tensor<4x1x8xf32>) -> tensor<4x1x8xf32>
  %o4 = tensor.expand_shape %o [[0, 1], [2], [3]] output_shape [1, 4, 1, 8] : tensor<4x1x8xf32> into tensor<1x4x1x8xf32>
  return %o4, %kc, %vc : tensor<1x4x1x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>
}

// -----

// The mask Hugging Face builds for a decode step, as the TorchScript ONNX
// export imports it: an arange over past + 1 tokens (the past length read
// from the past keys) compared with the past length, and attention_mask
// gathered at the arange, with a decomposed softmax and the scores in BSHD
// order. The comparison is the causal mask (the past length is where the
// new token goes); the gather reads attention_mask[0, t], and the mask
// operand takes its size from attention_mask: a remarked assumption. The
// past keys leave the signature with everything that read their length.
// CHECK-LABEL: func.func @decode_dynamic_past_gathered_mask
// CHECK-SAME: (%[[Q:.*]]: tensor<1x1x2x8xf32>, %[[K:.*]]: tensor<1x1x2x8xf32>, %[[V:.*]]: tensor<1x1x2x8xf32>, %[[C:.*]]: !kvc.cache<1x2x?x8xf32> {kvc.layer = 0 : i64}, %[[AM:.*]]: tensor<1x?xi64>)
// CHECK-NOT: tensor.dim %{{.*}} : tensor<1x?x2x8xf32>
// CHECK: %[[C1:.*]] = kvc.append %[[C]], %{{.*}}, %{{.*}} : !kvc.cache<1x2x?x8xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>
// CHECK: %[[N:.*]] = tensor.dim %[[AM]], %{{.*}} : tensor<1x?xi64>
// CHECK: %[[E:.*]] = tensor.empty(%[[N]]) : tensor<?xf32>
// CHECK: %[[MASK:.*]] = linalg.generic {{.*}} ins(%[[AM]] : tensor<1x?xi64>) outs(%[[E]] : tensor<?xf32>)
// CHECK: arith.cmpi ne
// CHECK: arith.select
// CHECK: %[[MASK4:.*]] = tensor.expand_shape %[[MASK]] {{\[}}[0, 1, 2, 3]] output_shape [1, 1, 1, %{{.*}}] : tensor<?xf32> into tensor<1x1x1x?xf32>
// CHECK: kvc.attend %{{.*}}, %[[C1]] mask(%[[MASK4]] : tensor<1x1x1x?xf32>) {causal, scale = 0.353553385 : f32} : tensor<1x2x1x8xf32>, !kvc.cache<1x2x?x8xf32> -> tensor<1x2x1x8xf32>
// CHECK-NOT: tensor.generate
// CHECK-NOT: linalg.index
#q5 = affine_map<(b, i, h, j, d) -> (b, i, h, d)>
#k5 = affine_map<(b, i, h, j, d) -> (b, j, h, d)>
#s5 = affine_map<(b, i, h, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#row4 = affine_map<(b, h, i, j) -> (b, h, i)>
#tok4 = affine_map<(b, h, i, j) -> (j)>
#p5 = affine_map<(b, i, h, d, j) -> (b, h, i, j)>
#v5 = affine_map<(b, i, h, d, j) -> (b, j, h, d)>
#o5 = affine_map<(b, i, h, d, j) -> (b, i, h, d)>
#ar = affine_map<(t) -> (t)>
func.func @decode_dynamic_past_gathered_mask(%q: tensor<1x1x2x8xf32>, %k: tensor<1x1x2x8xf32>, %v: tensor<1x1x2x8xf32>,
    %past_k: tensor<1x?x2x8xf32>, %past_v: tensor<1x?x2x8xf32>, %am: tensor<1x?xi64>)
    -> (tensor<1x1x2x8xf32>, tensor<1x?x2x8xf32>, tensor<1x?x2x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %kc = tensor.concat dim(1) %past_k, %k : (tensor<1x?x2x8xf32>, tensor<1x1x2x8xf32>) -> tensor<1x?x2x8xf32>
  %vc = tensor.concat dim(1) %past_v, %v : (tensor<1x?x2x8xf32>, tensor<1x1x2x8xf32>) -> tensor<1x?x2x8xf32>
  // arange(past + 1) and the past length, from the past keys.
  %past = tensor.dim %past_k, %c1 : tensor<1x?x2x8xf32>
  %n = arith.addi %past, %c1 : index
  %ea = tensor.empty(%n) : tensor<?xi64>
  %arange = linalg.generic {indexing_maps = [#ar], iterator_types = ["parallel"]} outs(%ea : tensor<?xi64>) {
  ^bb0(%o: i64):
    %i = linalg.index 0 : index
    %i64 = arith.index_cast %i : index to i64
    linalg.yield %i64 : i64
  } -> tensor<?xi64>
  %past64 = arith.index_cast %past : index to i64
  // attention_mask[0, arange[t]], with the wrap of negative indices.
  %len = tensor.dim %am, %c1 : tensor<1x?xi64>
  %padding = tensor.generate %n {
  ^bb0(%t: index):
    %a = tensor.extract %arange[%t] : tensor<?xi64>
    %ai = arith.index_cast %a : i64 to index
    %neg = arith.cmpi slt, %ai, %c0 : index
    %wrapped = arith.addi %ai, %len : index
    %idx = arith.select %neg, %wrapped, %ai : index
    %m = tensor.extract %am[%c0, %idx] : tensor<1x?xi64>
    tensor.yield %m : i64
  } : tensor<?xi64>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty(%n) : tensor<1x2x1x?xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x1x?xf32>) -> tensor<1x2x1x?xf32>
  // expected-remark @below {{kvc-raise-attention: assumes the tensor gathered at}}
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x1x2x8xf32>, tensor<1x?x2x8xf32>) outs(%sz : tensor<1x2x1x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x?xf32>
  %x = linalg.generic {indexing_maps = [#id4, #tok4, #tok4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s, %arange, %padding : tensor<1x2x1x?xf32>, tensor<?xi64>, tensor<?xi64>) outs(%es : tensor<1x2x1x?xf32>) {
  ^bb0(%a: f32, %pos: i64, %pad: i64, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %min = arith.constant -3.40282347E+38 : f32
    %zero64 = arith.constant 0 : i64
    %seen = arith.cmpi sle, %pos, %past64 : i64
    %kept = arith.cmpi ne, %pad, %zero64 : i64
    %keep = arith.andi %seen, %kept : i1
    %y = arith.mulf %a, %c : f32
    %r = arith.select %keep, %y, %min : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x?xf32>
  %er = tensor.empty() : tensor<1x2x1xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mz = linalg.fill ins(%ninf : f32) outs(%er : tensor<1x2x1xf32>) -> tensor<1x2x1xf32>
  %max = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x : tensor<1x2x1x?xf32>) outs(%mz : tensor<1x2x1xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.maximumf %a, %acc : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%x, %max : tensor<1x2x1x?xf32>, tensor<1x2x1xf32>) outs(%es : tensor<1x2x1x?xf32>) {
  ^bb0(%a: f32, %mx: f32, %o: f32):
    %d = arith.subf %a, %mx : f32
    %e = math.exp %d : f32
    linalg.yield %e : f32
  } -> tensor<1x2x1x?xf32>
  %sumz = linalg.fill ins(%zero : f32) outs(%er : tensor<1x2x1xf32>) -> tensor<1x2x1xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%ex : tensor<1x2x1x?xf32>) outs(%sumz : tensor<1x2x1xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %a, %acc : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%ex, %sum : tensor<1x2x1x?xf32>, tensor<1x2x1xf32>) outs(%es : tensor<1x2x1x?xf32>) {
  ^bb0(%a: f32, %t: f32, %o: f32):
    %r = arith.divf %a, %t : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x?xf32>
  %eo = tensor.empty() : tensor<1x1x2x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x1x2x8xf32>) -> tensor<1x1x2x8xf32>
  %o = linalg.generic {indexing_maps = [#p5, #v5, #o5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x1x?xf32>, tensor<1x?x2x8xf32>) outs(%oz : tensor<1x1x2x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x1x2x8xf32>
  return %o, %kc, %vc : tensor<1x1x2x8xf32>, tensor<1x?x2x8xf32>, tensor<1x?x2x8xf32>
}

// -----

// A dynamic head dimension: only the token count may be dynamic.
// CHECK-LABEL: func.func @dynamic_head_dim
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @dynamic_head_dim(%q: tensor<1x2x1x?xf32>, %k: tensor<1x2x1x?xf32>, %v: tensor<1x2x1x?xf32>,
    %past_k: tensor<1x2x?x?xf32>, %past_v: tensor<1x2x?x?xf32>, %s0: tensor<1x2x1x?xf32>, %o0: tensor<1x2x1x?xf32>)
    -> (tensor<1x2x1x?xf32>, tensor<1x2x?x?xf32>, tensor<1x2x?x?xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x?x?xf32>, tensor<1x2x1x?xf32>) -> tensor<1x2x?x?xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x?x?xf32>, tensor<1x2x1x?xf32>) -> tensor<1x2x?x?xf32>
  %zero = arith.constant 0.0 : f32
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x1x?xf32>) -> tensor<1x2x1x?xf32>
  // expected-remark @below {{kvc-raise-attention: QKᵀ not recognized: dynamic shapes are not supported except for the cache token count: a batch, head, query or channel dimension is dynamic}}
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x1x?xf32>, tensor<1x2x?x?xf32>) outs(%sz : tensor<1x2x1x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x?xf32>
  %p = linalg.softmax dimension(3) ins(%s : tensor<1x2x1x?xf32>) outs(%s0 : tensor<1x2x1x?xf32>) -> tensor<1x2x1x?xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x1x?xf32>) -> tensor<1x2x1x?xf32>
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x1x?xf32>, tensor<1x2x?x?xf32>) outs(%oz : tensor<1x2x1x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x?xf32>
  return %o, %kc, %vc : tensor<1x2x1x?xf32>, tensor<1x2x?x?xf32>, tensor<1x2x?x?xf32>
}

// -----

// A dynamic batch as well as a dynamic past: the batch may not be dynamic.
// CHECK-LABEL: func.func @dynamic_batch_and_past
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @dynamic_batch_and_past(%q: tensor<?x2x1x8xf32>, %k: tensor<?x2x1x8xf32>, %v: tensor<?x2x1x8xf32>,
    %past_k: tensor<?x2x?x8xf32>, %past_v: tensor<?x2x?x8xf32>, %s0: tensor<?x2x1x?xf32>, %o0: tensor<?x2x1x8xf32>)
    -> (tensor<?x2x1x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<?x2x?x8xf32>, tensor<?x2x1x8xf32>) -> tensor<?x2x?x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<?x2x?x8xf32>, tensor<?x2x1x8xf32>) -> tensor<?x2x?x8xf32>
  %zero = arith.constant 0.0 : f32
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<?x2x1x?xf32>) -> tensor<?x2x1x?xf32>
  // expected-remark @below {{kvc-raise-attention: QKᵀ not recognized: dynamic shapes are not supported except for the cache token count}}
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<?x2x1x8xf32>, tensor<?x2x?x8xf32>) outs(%sz : tensor<?x2x1x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<?x2x1x?xf32>
  %p = linalg.softmax dimension(3) ins(%s : tensor<?x2x1x?xf32>) outs(%s0 : tensor<?x2x1x?xf32>) -> tensor<?x2x1x?xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<?x2x1x8xf32>) -> tensor<?x2x1x8xf32>
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<?x2x1x?xf32>, tensor<?x2x?x8xf32>) outs(%oz : tensor<?x2x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<?x2x1x8xf32>
  return %o, %kc, %vc : tensor<?x2x1x8xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
}

// -----

// A bias computed from the token index alone (ALiBi-like) over a dynamic
// token count: the mask operand would have no tensor to take its size from.
// CHECK-LABEL: func.func @dynamic_index_only_bias
// CHECK: tensor.concat
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @dynamic_index_only_bias(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k: tensor<1x2x?x8xf32>, %past_v: tensor<1x2x?x8xf32>, %s0: tensor<1x2x1x?xf32>)
    -> (tensor<1x2x1x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x?x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x?x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x?x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x?x8xf32>
  %zero = arith.constant 0.0 : f32
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x1x?xf32>) -> tensor<1x2x1x?xf32>
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x1x8xf32>, tensor<1x2x?x8xf32>) outs(%sz : tensor<1x2x1x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x?xf32>
  %x = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x1x?xf32>) outs(%s0 : tensor<1x2x1x?xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %slope = arith.constant 0.5 : f32
    %j = linalg.index 3 : index
    %j32 = arith.index_cast %j : index to i32
    %jf = arith.sitofp %j32 : i32 to f32
    %bias = arith.mulf %jf, %slope : f32
    %y = arith.mulf %a, %c : f32
    %r = arith.addf %y, %bias : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x?xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x1x?xf32>) outs(%s0 : tensor<1x2x1x?xf32>) -> tensor<1x2x1x?xf32>
  %eo = tensor.empty() : tensor<1x2x1x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32>
  // expected-remark @below {{kvc-raise-attention: mask not recognized: the cache token count is dynamic and the mask reads no tensor that has it as a dimension}}
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x1x?xf32>, tensor<1x2x?x8xf32>) outs(%oz : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x8xf32>
  return %o, %kc, %vc : tensor<1x2x1x8xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>
}
