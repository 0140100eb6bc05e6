// RUN: kvc-opt %s -split-input-file --kvc-raise-attention | FileCheck %s

// kvc-raise-attention on the forms attention takes in linalg-on-tensors
// IR. Each case is one attention over a cache extended by new tokens; the
// rewrite appends the new keys/values to a !kvc.cache argument and attends
// over it, with the scale, causal/window and mask operand kvc.attend needs,
// and erases the old computation.

// Decode, BHSD, QKᵀ as linalg.batch_matmul on heads fused with the batch,
// Kᵀ by linalg.transpose, repeat_kv by linalg.broadcast + collapse_shape,
// scale by linalg.generic mulf, linalg.softmax, f32. No mask: a decode step
// sees every cached token.
// CHECK-LABEL: func.func @decode_batch_matmul_bhsd
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x1x8xf32>, %[[K:.*]]: tensor<1x2x1x8xf32>, %[[V:.*]]: tensor<1x2x1x8xf32>, %[[C:.*]]: !kvc.cache<1x2x?x8xf32> {kvc.layer = 0 : i64})
// CHECK-SAME: -> (tensor<1x4x1x8xf32>, !kvc.cache<1x2x?x8xf32>)
// CHECK-NEXT: %[[C1:.*]] = kvc.append %[[C]], %[[K]], %[[V]] : !kvc.cache<1x2x?x8xf32>, tensor<1x2x1x8xf32>, tensor<1x2x1x8xf32>
// CHECK-NEXT: %[[O:.*]] = kvc.attend %[[Q]], %[[C1]] {scale = 0.353553385 : f32} : tensor<1x4x1x8xf32>, !kvc.cache<1x2x?x8xf32> -> tensor<1x4x1x8xf32>
// CHECK-NEXT: return %[[O]], %[[C1]]
func.func @decode_batch_matmul_bhsd(%q: tensor<1x4x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>)
    -> (tensor<1x4x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %e5 = tensor.empty() : tensor<1x2x2x6x8xf32>
  %kb = linalg.broadcast ins(%kc : tensor<1x2x6x8xf32>) outs(%e5 : tensor<1x2x2x6x8xf32>) dimensions = [2]
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<1x2x2x6x8xf32> into tensor<1x4x6x8xf32>
  %vb = linalg.broadcast ins(%vc : tensor<1x2x6x8xf32>) outs(%e5 : tensor<1x2x2x6x8xf32>) dimensions = [2]
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : tensor<1x2x2x6x8xf32> into tensor<1x4x6x8xf32>
  %et = tensor.empty() : tensor<1x4x8x6xf32>
  %kt = linalg.transpose ins(%kr : tensor<1x4x6x8xf32>) outs(%et : tensor<1x4x8x6xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x4x1x8xf32> into tensor<4x1x8xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x4x8x6xf32> into tensor<4x8x6xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<4x1x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<4x1x6xf32>) -> tensor<4x1x6xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<4x1x8xf32>, tensor<4x8x6xf32>) outs(%sz : tensor<4x1x6xf32>) -> tensor<4x1x6xf32>
  %s4 = tensor.expand_shape %s [[0, 1], [2], [3]] output_shape [1, 4, 1, 6] : tensor<4x1x6xf32> into tensor<1x4x1x6xf32>
  %e4 = tensor.empty() : tensor<1x4x1x6xf32>
  %scaled = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s4 : tensor<1x4x1x6xf32>) outs(%e4 : tensor<1x4x1x6xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %m = arith.mulf %a, %c : f32
    linalg.yield %m : f32
  } -> tensor<1x4x1x6xf32>
  %p = linalg.softmax dimension(3) ins(%scaled : tensor<1x4x1x6xf32>) outs(%e4 : tensor<1x4x1x6xf32>) -> tensor<1x4x1x6xf32>
  %p3 = tensor.collapse_shape %p [[0, 1], [2], [3]] : tensor<1x4x1x6xf32> into tensor<4x1x6xf32>
  %v3 = tensor.collapse_shape %vr [[0, 1], [2], [3]] : tensor<1x4x6x8xf32> into tensor<4x6x8xf32>
  %eo = tensor.empty() : tensor<4x1x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<4x1x8xf32>) -> tensor<4x1x8xf32>
  %o = linalg.batch_matmul ins(%p3, %v3 : tensor<4x1x6xf32>, tensor<4x6x8xf32>) outs(%oz : tensor<4x1x8xf32>) -> tensor<4x1x8xf32>
  %o4 = tensor.expand_shape %o [[0, 1], [2], [3]] output_shape [1, 4, 1, 8] : tensor<4x1x8xf32> into tensor<1x4x1x8xf32>
  return %o4, %kc, %vc : tensor<1x4x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>
}

// -----

// Chunked prefill (3 new tokens), BSHD cache (concat along dim 1), GQA by a
// grouped query reshape, QKᵀ and P·V as linalg.generic contractions with
// the transposes in their indexing maps, scale by divf, a causal select
// mask from linalg.index, decomposed softmax, f16.
// CHECK-LABEL: func.func @prefill_generic_bshd
// CHECK-SAME: (%[[Q:.*]]: tensor<1x3x4x8xf16>, %[[K:.*]]: tensor<1x3x2x8xf16>, %[[V:.*]]: tensor<1x3x2x8xf16>, %[[C:.*]]: !kvc.cache<1x2x?x8xf16> {kvc.layer = 0 : i64})
// CHECK-DAG: %[[KT:.*]] = linalg.transpose ins(%[[K]] : tensor<1x3x2x8xf16>) outs(%{{.*}} : tensor<1x2x3x8xf16>) permutation = [0, 2, 1, 3]
// CHECK-DAG: %[[VT:.*]] = linalg.transpose ins(%[[V]] : tensor<1x3x2x8xf16>) outs(%{{.*}} : tensor<1x2x3x8xf16>) permutation = [0, 2, 1, 3]
// CHECK: %[[C1:.*]] = kvc.append %[[C]], %[[KT]], %[[VT]] : !kvc.cache<1x2x?x8xf16>, tensor<1x2x3x8xf16>, tensor<1x2x3x8xf16>
// CHECK: %[[QT:.*]] = linalg.transpose ins(%[[Q]] : tensor<1x3x4x8xf16>) outs(%{{.*}} : tensor<1x4x3x8xf16>) permutation = [0, 2, 1, 3]
// CHECK: %[[O:.*]] = kvc.attend %[[QT]], %[[C1]] {causal, scale = 0.353591174 : f32} : tensor<1x4x3x8xf16>, !kvc.cache<1x2x?x8xf16> -> tensor<1x4x3x8xf16>
// CHECK: %[[OT:.*]] = linalg.transpose ins(%[[O]] : tensor<1x4x3x8xf16>) outs(%{{.*}} : tensor<1x3x4x8xf16>) permutation = [0, 2, 1, 3]
// CHECK-NOT: linalg.generic
// CHECK: return %[[OT]], %[[C1]] : tensor<1x3x4x8xf16>, !kvc.cache<1x2x?x8xf16>
#qk_q = affine_map<(b, h, g, i, j, d) -> (b, i, h, g, d)>
#qk_k = affine_map<(b, h, g, i, j, d) -> (b, j, h, d)>
#qk_s = affine_map<(b, h, g, i, j, d) -> (b, h, g, i, j)>
#id5 = affine_map<(b, h, g, i, j) -> (b, h, g, i, j)>
#row5 = affine_map<(b, h, g, i, j) -> (b, h, g, i)>
#pv_p = affine_map<(b, h, g, i, e, j) -> (b, h, g, i, j)>
#pv_v = affine_map<(b, h, g, i, e, j) -> (b, j, h, e)>
#pv_o = affine_map<(b, h, g, i, e, j) -> (b, i, h, g, e)>
func.func @prefill_generic_bshd(%q: tensor<1x3x4x8xf16>, %k: tensor<1x3x2x8xf16>, %v: tensor<1x3x2x8xf16>,
    %past_k: tensor<1x5x2x8xf16>, %past_v: tensor<1x5x2x8xf16>)
    -> (tensor<1x3x4x8xf16>, tensor<1x8x2x8xf16>, tensor<1x8x2x8xf16>) {
  %kc = tensor.concat dim(1) %past_k, %k : (tensor<1x5x2x8xf16>, tensor<1x3x2x8xf16>) -> tensor<1x8x2x8xf16>
  %vc = tensor.concat dim(1) %past_v, %v : (tensor<1x5x2x8xf16>, tensor<1x3x2x8xf16>) -> tensor<1x8x2x8xf16>
  %qg = tensor.expand_shape %q [[0], [1], [2, 3], [4]] output_shape [1, 3, 2, 2, 8] : tensor<1x3x4x8xf16> into tensor<1x3x2x2x8xf16>
  %zero = arith.constant 0.0 : f16
  %es = tensor.empty() : tensor<1x2x2x3x8xf16>
  %sz = linalg.fill ins(%zero : f16) outs(%es : tensor<1x2x2x3x8xf16>) -> tensor<1x2x2x3x8xf16>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%qg, %kc : tensor<1x3x2x2x8xf16>, tensor<1x8x2x8xf16>) outs(%sz : tensor<1x2x2x3x8xf16>) {
  ^bb0(%a: f16, %b: f16, %acc: f16):
    %m = arith.mulf %a, %b : f16
    %r = arith.addf %acc, %m : f16
    linalg.yield %r : f16
  } -> tensor<1x2x2x3x8xf16>
  %x = linalg.generic {indexing_maps = [#id5, #id5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x2x3x8xf16>) outs(%es : tensor<1x2x2x3x8xf16>) {
  ^bb0(%a: f16, %o: f16):
    %sqrt = arith.constant 2.828125 : f16
    %d = arith.divf %a, %sqrt : f16
    %i = linalg.index 3 : index
    %j = linalg.index 4 : index
    %past = arith.constant 5 : index
    %pos = arith.addi %i, %past : index
    %keep = arith.cmpi sle, %j, %pos : index
    %ninf = arith.constant 0xFC00 : f16
    %r = arith.select %keep, %d, %ninf : f16
    linalg.yield %r : f16
  } -> tensor<1x2x2x3x8xf16>
  %er = tensor.empty() : tensor<1x2x2x3xf16>
  %ninf = arith.constant 0xFC00 : f16
  %mi = linalg.fill ins(%ninf : f16) outs(%er : tensor<1x2x2x3xf16>) -> tensor<1x2x2x3xf16>
  %max = linalg.generic {indexing_maps = [#id5, #row5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%x : tensor<1x2x2x3x8xf16>) outs(%mi : tensor<1x2x2x3xf16>) {
  ^bb0(%a: f16, %acc: f16):
    %m = arith.maximumf %a, %acc : f16
    linalg.yield %m : f16
  } -> tensor<1x2x2x3xf16>
  %ex = linalg.generic {indexing_maps = [#id5, #row5, #id5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%x, %max : tensor<1x2x2x3x8xf16>, tensor<1x2x2x3xf16>) outs(%es : tensor<1x2x2x3x8xf16>) {
  ^bb0(%a: f16, %m: f16, %o: f16):
    %d = arith.subf %a, %m : f16
    %e = math.exp %d : f16
    linalg.yield %e : f16
  } -> tensor<1x2x2x3x8xf16>
  %si = linalg.fill ins(%zero : f16) outs(%er : tensor<1x2x2x3xf16>) -> tensor<1x2x2x3xf16>
  %sum = linalg.generic {indexing_maps = [#id5, #row5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%ex : tensor<1x2x2x3x8xf16>) outs(%si : tensor<1x2x2x3xf16>) {
  ^bb0(%a: f16, %acc: f16):
    %r = arith.addf %a, %acc : f16
    linalg.yield %r : f16
  } -> tensor<1x2x2x3xf16>
  %p = linalg.generic {indexing_maps = [#id5, #row5, #id5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%ex, %sum : tensor<1x2x2x3x8xf16>, tensor<1x2x2x3xf16>) outs(%es : tensor<1x2x2x3x8xf16>) {
  ^bb0(%a: f16, %t: f16, %o: f16):
    %r = arith.divf %a, %t : f16
    linalg.yield %r : f16
  } -> tensor<1x2x2x3x8xf16>
  %eo = tensor.empty() : tensor<1x3x2x2x8xf16>
  %oz = linalg.fill ins(%zero : f16) outs(%eo : tensor<1x3x2x2x8xf16>) -> tensor<1x3x2x2x8xf16>
  %o = linalg.generic {indexing_maps = [#pv_p, #pv_v, #pv_o], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x2x3x8xf16>, tensor<1x8x2x8xf16>) outs(%oz : tensor<1x3x2x2x8xf16>) {
  ^bb0(%a: f16, %b: f16, %acc: f16):
    %m = arith.mulf %a, %b : f16
    %r = arith.addf %acc, %m : f16
    linalg.yield %r : f16
  } -> tensor<1x3x2x2x8xf16>
  %o4 = tensor.collapse_shape %o [[0], [1], [2, 3], [4]] : tensor<1x3x2x2x8xf16> into tensor<1x3x4x8xf16>
  return %o4, %kc, %vc : tensor<1x3x4x8xf16>, tensor<1x8x2x8xf16>, tensor<1x8x2x8xf16>
}

// -----

// Multi-query decode with 2-D linalg.matmul: one KV head, the four query
// heads as matmul rows, Kᵀ through the matmul's indexing maps, queries
// scaled before QKᵀ, an additive padding mask from an argument.
// CHECK-LABEL: func.func @decode_matmul_mqa_prescaled
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x1x8xf32>, %[[K:.*]]: tensor<1x1x1x8xf32>, %[[V:.*]]: tensor<1x1x1x8xf32>, %[[C:.*]]: !kvc.cache<1x1x?x8xf32> {kvc.layer = 0 : i64}, %[[M:.*]]: tensor<1x6xf32>)
// CHECK: %[[C1:.*]] = kvc.append %[[C]], %[[K]], %[[V]]
// CHECK: %[[MASK:.*]] = tensor.expand_shape %[[M]] {{\[}}[0], [1, 2, 3]] output_shape [1, 1, 1, 6] : tensor<1x6xf32> into tensor<1x1x1x6xf32>
// CHECK: %[[O:.*]] = kvc.attend %[[Q]], %[[C1]] mask(%[[MASK]] : tensor<1x1x1x6xf32>) {scale = 0.353553385 : f32} : tensor<1x4x1x8xf32>, !kvc.cache<1x1x?x8xf32> -> tensor<1x4x1x8xf32>
// CHECK: return %[[O]], %[[C1]]
#id2 = affine_map<(m, n) -> (m, n)>
func.func @decode_matmul_mqa_prescaled(%q: tensor<1x4x1x8xf32>, %k: tensor<1x1x1x8xf32>, %v: tensor<1x1x1x8xf32>,
    %past_k: tensor<1x1x5x8xf32>, %past_v: tensor<1x1x5x8xf32>, %mask: tensor<1x6xf32>)
    -> (tensor<1x4x1x8xf32>, tensor<1x1x6x8xf32>, tensor<1x1x6x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x1x5x8xf32>, tensor<1x1x1x8xf32>) -> tensor<1x1x6x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x1x5x8xf32>, tensor<1x1x1x8xf32>) -> tensor<1x1x6x8xf32>
  %eq = tensor.empty() : tensor<1x4x1x8xf32>
  %qs = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%q : tensor<1x4x1x8xf32>) outs(%eq : tensor<1x4x1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %m = arith.mulf %a, %c : f32
    linalg.yield %m : f32
  } -> tensor<1x4x1x8xf32>
  %q2 = tensor.collapse_shape %qs [[0, 1, 2], [3]] : tensor<1x4x1x8xf32> into tensor<4x8xf32>
  %k2 = tensor.collapse_shape %kc [[0, 1, 2], [3]] : tensor<1x1x6x8xf32> into tensor<6x8xf32>
  %v2 = tensor.collapse_shape %vc [[0, 1, 2], [3]] : tensor<1x1x6x8xf32> into tensor<6x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<4x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<4x6xf32>) -> tensor<4x6xf32>
  %s = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
      ins(%q2, %k2 : tensor<4x8xf32>, tensor<6x8xf32>) outs(%sz : tensor<4x6xf32>) -> tensor<4x6xf32>
  %x = linalg.generic {indexing_maps = [#id2, affine_map<(m, n) -> (0, n)>, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%s, %mask : tensor<4x6xf32>, tensor<1x6xf32>) outs(%es : tensor<4x6xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.addf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<4x6xf32>
  %p = linalg.softmax dimension(1) ins(%x : tensor<4x6xf32>) outs(%es : tensor<4x6xf32>) -> tensor<4x6xf32>
  %eo = tensor.empty() : tensor<4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<4x8xf32>) -> tensor<4x8xf32>
  %o = linalg.matmul ins(%p, %v2 : tensor<4x6xf32>, tensor<6x8xf32>) outs(%oz : tensor<4x8xf32>) -> tensor<4x8xf32>
  %o4 = tensor.expand_shape %o [[0, 1, 2], [3]] output_shape [1, 4, 1, 8] : tensor<4x8xf32> into tensor<1x4x1x8xf32>
  return %o4, %kc, %vc : tensor<1x4x1x8xf32>, tensor<1x1x6x8xf32>, tensor<1x1x6x8xf32>
}

// -----

// Chunked prefill in bf16, multi-head (no GQA), scale by linalg.mul with a
// splat constant, softmax in f32 on extended scores, and a causal mask
// built as a separate tensor from linalg.index: -inf where key > query.
// CHECK-LABEL: func.func @prefill_causal_additive_bf16
// CHECK: %[[C1:.*]] = kvc.append %{{.*}}, %{{.*}}, %{{.*}} : !kvc.cache<1x2x?x8xbf16>, tensor<1x2x3x8xbf16>, tensor<1x2x3x8xbf16>
// CHECK: kvc.attend %{{.*}}, %[[C1]] {causal, scale = 0.353515625 : f32} : tensor<1x2x3x8xbf16>, !kvc.cache<1x2x?x8xbf16> -> tensor<1x2x3x8xbf16>
// CHECK-NOT: linalg.index
// CHECK-NOT: linalg.softmax
func.func @prefill_causal_additive_bf16(%q: tensor<1x2x3x8xbf16>, %k: tensor<1x2x3x8xbf16>, %v: tensor<1x2x3x8xbf16>,
    %past_k: tensor<1x2x5x8xbf16>, %past_v: tensor<1x2x5x8xbf16>)
    -> (tensor<1x2x3x8xbf16>, tensor<1x2x8x8xbf16>, tensor<1x2x8x8xbf16>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xbf16>, tensor<1x2x3x8xbf16>) -> tensor<1x2x8x8xbf16>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xbf16>, tensor<1x2x3x8xbf16>) -> tensor<1x2x8x8xbf16>
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x3x8xbf16> into tensor<2x3x8xbf16>
  %k3 = tensor.collapse_shape %kc [[0, 1], [2], [3]] : tensor<1x2x8x8xbf16> into tensor<2x8x8xbf16>
  %v3 = tensor.collapse_shape %vc [[0, 1], [2], [3]] : tensor<1x2x8x8xbf16> into tensor<2x8x8xbf16>
  %et = tensor.empty() : tensor<2x8x8xbf16>
  %kt = linalg.transpose ins(%k3 : tensor<2x8x8xbf16>) outs(%et : tensor<2x8x8xbf16>) permutation = [0, 2, 1]
  %zero = arith.constant 0.0 : bf16
  %es = tensor.empty() : tensor<2x3x8xbf16>
  %sz = linalg.fill ins(%zero : bf16) outs(%es : tensor<2x3x8xbf16>) -> tensor<2x3x8xbf16>
  %s = linalg.batch_matmul ins(%q3, %kt : tensor<2x3x8xbf16>, tensor<2x8x8xbf16>) outs(%sz : tensor<2x3x8xbf16>) -> tensor<2x3x8xbf16>
  %scale = arith.constant dense<0.353515625> : tensor<2x3x8xbf16>
  %ss = linalg.mul ins(%s, %scale : tensor<2x3x8xbf16>, tensor<2x3x8xbf16>) outs(%es : tensor<2x3x8xbf16>) -> tensor<2x3x8xbf16>
  %em = tensor.empty() : tensor<3x8xf32>
  %mask = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]} outs(%em : tensor<3x8xf32>) {
  ^bb0(%o: f32):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %c5 = arith.constant 5 : index
    %pos = arith.addi %i, %c5 : index
    %future = arith.cmpi ugt, %j, %pos : index
    %ninf = arith.constant 0xFF800000 : f32
    %z = arith.constant 0.0 : f32
    %m = arith.select %future, %ninf, %z : f32
    linalg.yield %m : f32
  } -> tensor<3x8xf32>
  %ef = tensor.empty() : tensor<2x3x8xf32>
  %x = linalg.generic {indexing_maps = [affine_map<(h, i, j) -> (h, i, j)>, affine_map<(h, i, j) -> (i, j)>, affine_map<(h, i, j) -> (h, i, j)>], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%ss, %mask : tensor<2x3x8xbf16>, tensor<3x8xf32>) outs(%ef : tensor<2x3x8xf32>) {
  ^bb0(%a: bf16, %m: f32, %o: f32):
    %af = arith.extf %a : bf16 to f32
    %r = arith.addf %af, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x3x8xf32>
  %pf = linalg.softmax dimension(2) ins(%x : tensor<2x3x8xf32>) outs(%ef : tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
  %p = linalg.generic {indexing_maps = [affine_map<(h, i, j) -> (h, i, j)>, affine_map<(h, i, j) -> (h, i, j)>], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%pf : tensor<2x3x8xf32>) outs(%es : tensor<2x3x8xbf16>) {
  ^bb0(%a: f32, %o: bf16):
    %t = arith.truncf %a : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<2x3x8xbf16>
  %zero8 = tensor.empty() : tensor<2x3x8xbf16>
  %oz = linalg.fill ins(%zero : bf16) outs(%zero8 : tensor<2x3x8xbf16>) -> tensor<2x3x8xbf16>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x3x8xbf16>, tensor<2x8x8xbf16>) outs(%oz : tensor<2x3x8xbf16>) -> tensor<2x3x8xbf16>
  %o4 = tensor.expand_shape %o [[0, 1], [2], [3]] output_shape [1, 2, 3, 8] : tensor<2x3x8xbf16> into tensor<1x2x3x8xbf16>
  return %o4, %kc, %vc : tensor<1x2x3x8xbf16>, tensor<1x2x8x8xbf16>, tensor<1x2x8x8xbf16>
}

// -----

// Sliding-window prefill: a select mask on (key <= query) && (query - key
// < 4), computed inside the op that also scales by linalg.div with a
// filled divisor; 4-D QKᵀ and P·V as linalg.generic.
// CHECK-LABEL: func.func @prefill_sliding_window_select
// CHECK: %[[C1:.*]] = kvc.append
// CHECK: kvc.attend %{{.*}}, %[[C1]] {causal, scale = 0.353553385 : f32, window = 4 : i64} : tensor<1x2x3x8xf32>, !kvc.cache<1x2x?x8xf32> -> tensor<1x2x3x8xf32>
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @prefill_sliding_window_select(%q: tensor<1x2x3x8xf32>, %k: tensor<1x2x3x8xf32>, %v: tensor<1x2x3x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>)
    -> (tensor<1x2x3x8xf32>, tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x3x8xf32>) -> tensor<1x2x8x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xf32>, tensor<1x2x3x8xf32>) -> tensor<1x2x8x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x3x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x3x8xf32>) -> tensor<1x2x3x8xf32>
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x3x8xf32>, tensor<1x2x8x8xf32>) outs(%sz : tensor<1x2x3x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x3x8xf32>
  %sqrt = arith.constant 2.82842708 : f32
  %div = linalg.fill ins(%sqrt : f32) outs(%es : tensor<1x2x3x8xf32>) -> tensor<1x2x3x8xf32>
  %sd = linalg.div ins(%s, %div : tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>) outs(%es : tensor<1x2x3x8xf32>) -> tensor<1x2x3x8xf32>
  %x = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%sd : tensor<1x2x3x8xf32>) outs(%es : tensor<1x2x3x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %c5 = arith.constant 5 : index
    %w = arith.constant 4 : index
    %pos = arith.addi %i, %c5 : index
    %past = arith.cmpi sle, %j, %pos : index
    %dist = arith.subi %pos, %j : index
    %near = arith.cmpi slt, %dist, %w : index
    %keep = arith.andi %past, %near : i1
    %ninf = arith.constant -1.0e+30 : f32
    %r = arith.select %keep, %a, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x3x8xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x3x8xf32>) outs(%es : tensor<1x2x3x8xf32>) -> tensor<1x2x3x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x3x8xf32>) -> tensor<1x2x3x8xf32>
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x3x8xf32>, tensor<1x2x8x8xf32>) outs(%oz : tensor<1x2x3x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x3x8xf32>
  return %o, %kc, %vc : tensor<1x2x3x8xf32>, tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>
}

// -----

// Batch 2 with an attention_mask argument (1 = token, 0 = padding) turned
// into an additive mask, plus a causal mask: the causal part becomes
// `causal`, the padding part the mask operand, computed by a new
// linalg.generic over batch x 1 x q_len x tokens.
// CHECK-LABEL: func.func @prefill_causal_and_padding
// CHECK-SAME: %[[AM:[^:]*]]: tensor<2x6xi64>
// CHECK: %[[C1:.*]] = kvc.append
// CHECK: %[[MASK:.*]] = linalg.generic {{.*}} ins(%[[AM]] : tensor<2x6xi64>) outs(%{{.*}} : tensor<2x2x6xf32>)
// CHECK: arith.sitofp
// CHECK: arith.subf
// CHECK: arith.mulf
// CHECK: %[[MASK4:.*]] = tensor.expand_shape %[[MASK]] {{.*}} : tensor<2x2x6xf32> into tensor<2x1x2x6xf32>
// CHECK: kvc.attend %{{.*}}, %[[C1]] mask(%[[MASK4]] : tensor<2x1x2x6xf32>) {causal, scale = 0.353553385 : f32} : tensor<2x2x2x8xf32>, !kvc.cache<2x2x?x8xf32> -> tensor<2x2x2x8xf32>
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @prefill_causal_and_padding(%q: tensor<2x2x2x8xf32>, %k: tensor<2x2x2x8xf32>, %v: tensor<2x2x2x8xf32>,
    %past_k: tensor<2x2x4x8xf32>, %past_v: tensor<2x2x4x8xf32>, %attention_mask: tensor<2x6xi64>)
    -> (tensor<2x2x2x8xf32>, tensor<2x2x6x8xf32>, tensor<2x2x6x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<2x2x4x8xf32>, tensor<2x2x2x8xf32>) -> tensor<2x2x6x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<2x2x4x8xf32>, tensor<2x2x2x8xf32>) -> tensor<2x2x6x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<2x2x2x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<2x2x2x6xf32>) -> tensor<2x2x2x6xf32>
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<2x2x2x8xf32>, tensor<2x2x6x8xf32>) outs(%sz : tensor<2x2x2x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x2x2x6xf32>
  %em = tensor.empty() : tensor<2x1x2x6xf32>
  %mask = linalg.generic {indexing_maps = [affine_map<(b, u, i, j) -> (b, j)>, affine_map<(b, u, i, j) -> (b, u, i, j)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%attention_mask : tensor<2x6xi64>) outs(%em : tensor<2x1x2x6xf32>) {
  ^bb0(%m: i64, %o: f32):
    %mf = arith.sitofp %m : i64 to f32
    %one = arith.constant 1.0 : f32
    %inv = arith.subf %one, %mf : f32
    %big = arith.constant -1.0e+09 : f32
    %pad = arith.mulf %inv, %big : f32
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %c4 = arith.constant 4 : index
    %pos = arith.addi %i, %c4 : index
    %ok = arith.cmpi ule, %j, %pos : index
    %ninf = arith.constant 0xFF800000 : f32
    %r = arith.select %ok, %pad, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<2x1x2x6xf32>
  %x = linalg.generic {indexing_maps = [#id4, affine_map<(b, h, i, j) -> (b, 0, i, j)>, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s, %mask : tensor<2x2x2x6xf32>, tensor<2x1x2x6xf32>) outs(%es : tensor<2x2x2x6xf32>) {
  ^bb0(%a: f32, %m: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %sc = arith.mulf %a, %c : f32
    %r = arith.addf %sc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x2x2x6xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<2x2x2x6xf32>) outs(%es : tensor<2x2x2x6xf32>) -> tensor<2x2x2x6xf32>
  %eo = tensor.empty() : tensor<2x2x2x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<2x2x2x8xf32>) -> tensor<2x2x2x8xf32>
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<2x2x2x6xf32>, tensor<2x2x6x8xf32>) outs(%oz : tensor<2x2x2x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<2x2x2x8xf32>
  return %o, %kc, %vc : tensor<2x2x2x8xf32>, tensor<2x2x6x8xf32>, tensor<2x2x6x8xf32>
}

// -----

// The cache extended by two tensor.insert_slice into a tensor.empty (what
// some exporters emit for a concat); 4-D linalg.generic contractions, Kᵀ
// in the indexing map, scale by divf.
// CHECK-LABEL: func.func @decode_insert_slice_concat
// CHECK-SAME: (%[[Q:.*]]: tensor<1x2x1x8xf32>, %[[K:.*]]: tensor<1x2x1x8xf32>, %[[V:.*]]: tensor<1x2x1x8xf32>, %[[C:.*]]: !kvc.cache<1x2x?x8xf32> {kvc.layer = 0 : i64})
// CHECK-NEXT: %[[C1:.*]] = kvc.append %[[C]], %[[K]], %[[V]]
// CHECK-NEXT: %[[O:.*]] = kvc.attend %[[Q]], %[[C1]] {scale = 0.353553385 : f32}
// CHECK-NEXT: return %[[O]], %[[C1]]
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @decode_insert_slice_concat(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>)
    -> (tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) {
  %e = tensor.empty() : tensor<1x2x6x8xf32>
  %k0 = tensor.insert_slice %past_k into %e[0, 0, 0, 0] [1, 2, 5, 8] [1, 1, 1, 1] : tensor<1x2x5x8xf32> into tensor<1x2x6x8xf32>
  %kc = tensor.insert_slice %k into %k0[0, 0, 5, 0] [1, 2, 1, 8] [1, 1, 1, 1] : tensor<1x2x1x8xf32> into tensor<1x2x6x8xf32>
  %v0 = tensor.insert_slice %past_v into %e[0, 0, 0, 0] [1, 2, 5, 8] [1, 1, 1, 1] : tensor<1x2x5x8xf32> into tensor<1x2x6x8xf32>
  %vc = tensor.insert_slice %v into %v0[0, 0, 5, 0] [1, 2, 1, 8] [1, 1, 1, 1] : tensor<1x2x1x8xf32> into tensor<1x2x6x8xf32>
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
    %c = arith.constant 2.82842708 : f32
    %r = arith.divf %a, %c : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x6xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x1x6xf32>) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
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

// A dynamic-update-slice: new keys written into a fixed 16-slot buffer at
// the position argument. Slots after the new tokens are unwritten; the
// mask (key <= position + query) hides them and is causal, so the kvc form
// needs no mask operand. The position argument stays.
// CHECK-LABEL: func.func @prefill_dynamic_update_slice
// CHECK-SAME: (%[[Q:.*]]: tensor<1x2x2x8xf32>, %[[K:.*]]: tensor<1x2x2x8xf32>, %[[V:.*]]: tensor<1x2x2x8xf32>, %[[C:.*]]: !kvc.cache<1x2x?x8xf32> {kvc.layer = 0 : i64}, %[[POS:.*]]: index)
// CHECK-SAME: -> (tensor<1x2x2x8xf32>, !kvc.cache<1x2x?x8xf32>)
// CHECK-NEXT: %[[C1:.*]] = kvc.append %[[C]], %[[K]], %[[V]]
// CHECK-NEXT: %[[O:.*]] = kvc.attend %[[Q]], %[[C1]] {causal, scale = 0.353553385 : f32}
// CHECK-NEXT: return %[[O]], %[[C1]]
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @prefill_dynamic_update_slice(%q: tensor<1x2x2x8xf32>, %k: tensor<1x2x2x8xf32>, %v: tensor<1x2x2x8xf32>,
    %past_k: tensor<1x2x16x8xf32>, %past_v: tensor<1x2x16x8xf32>, %pos: index)
    -> (tensor<1x2x2x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>) {
  %kc = tensor.insert_slice %k into %past_k[0, 0, %pos, 0] [1, 2, 2, 8] [1, 1, 1, 1] : tensor<1x2x2x8xf32> into tensor<1x2x16x8xf32>
  %vc = tensor.insert_slice %v into %past_v[0, 0, %pos, 0] [1, 2, 2, 8] [1, 1, 1, 1] : tensor<1x2x2x8xf32> into tensor<1x2x16x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x2x16xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x2x16xf32>) -> tensor<1x2x2x16xf32>
  %s = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc : tensor<1x2x2x8xf32>, tensor<1x2x16x8xf32>) outs(%sz : tensor<1x2x2x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x16xf32>
  %x = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x2x16xf32>) outs(%es : tensor<1x2x2x16xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %sc = arith.mulf %a, %c : f32
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
    %qpos = arith.addi %pos, %i : index
    %keep = arith.cmpi ule, %j, %qpos : index
    %ninf = arith.constant 0xFF800000 : f32
    %r = arith.select %keep, %sc, %ninf : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x16xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x2x16xf32>) outs(%es : tensor<1x2x2x16xf32>) -> tensor<1x2x2x16xf32>
  %eo = tensor.empty() : tensor<1x2x2x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x2x8xf32>) -> tensor<1x2x2x8xf32>
  %o = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vc : tensor<1x2x2x16xf32>, tensor<1x2x16x8xf32>) outs(%oz : tensor<1x2x2x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x8xf32>
  return %o, %kc, %vc : tensor<1x2x2x8xf32>, tensor<1x2x16x8xf32>, tensor<1x2x16x8xf32>
}

// -----

// The same buffer at decode, with an additive padding mask over the whole
// buffer: the mask operand keeps the position + 1 slots the cache holds.
// CHECK-LABEL: func.func @decode_dynamic_update_slice_padding
// CHECK-SAME: %[[POS:[^:]*]]: index, %[[PAD:[^:]*]]: tensor<1x16xf32>
// CHECK: %[[C1:.*]] = kvc.append
// CHECK: %[[M4:.*]] = tensor.expand_shape %[[PAD]] {{.*}} into tensor<1x1x1x16xf32>
// CHECK: %[[LEN:.*]] = arith.addi %[[POS]], %{{.*}} : index
// CHECK: %[[M:.*]] = tensor.extract_slice %[[M4]][0, 0, 0, 0] [1, 1, 1, %[[LEN]]] [1, 1, 1, 1] : tensor<1x1x1x16xf32> to tensor<1x1x1x?xf32>
// CHECK: kvc.attend %{{.*}}, %[[C1]] mask(%[[M]] : tensor<1x1x1x?xf32>) {causal, scale = 0.353553385 : f32}
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @decode_dynamic_update_slice_padding(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k: tensor<1x2x16x8xf32>, %past_v: tensor<1x2x16x8xf32>, %pos: index, %pad: tensor<1x16xf32>)
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
  %x = linalg.generic {indexing_maps = [#id4, affine_map<(b, h, i, j) -> (b, j)>, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s, %pad : tensor<1x2x1x16xf32>, tensor<1x16xf32>) outs(%es : tensor<1x2x1x16xf32>) {
  ^bb0(%a: f32, %m: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %sc = arith.mulf %a, %c : f32
    %j = linalg.index 3 : index
    %keep = arith.cmpi ule, %j, %pos : index
    %ninf = arith.constant 0xFF800000 : f32
    %r = arith.select %keep, %sc, %ninf : f32
    %rm = arith.addf %r, %m : f32
    linalg.yield %rm : f32
  } -> tensor<1x2x1x16xf32>
  %p = linalg.softmax dimension(3) ins(%x : tensor<1x2x1x16xf32>) outs(%es : tensor<1x2x1x16xf32>) -> tensor<1x2x1x16xf32>
  %eo = tensor.empty() : tensor<1x2x1x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32>
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

// JAX's dynamic_update_slice writes at clamp(select(pos < 0, pos + 16, pos),
// 0, 16 - 1), computed on 0-d tensors, while the causal mask compares the
// token with the 0-d position itself. The two positions are taken as equal
// (exact for 0 <= pos <= 15, which the pass states in a remark).
// CHECK-LABEL: func.func @decode_clamped_wrapped_position
// CHECK-SAME: (%[[Q:.*]]: tensor<1x2x1x8xf32>, %[[K:.*]]: tensor<1x2x1x8xf32>, %[[V:.*]]: tensor<1x2x1x8xf32>, %[[C:.*]]: !kvc.cache<1x2x?x8xf32> {kvc.layer = 0 : i64}, %[[POS:.*]]: tensor<i32>)
// CHECK: %[[C1:.*]] = kvc.append %[[C]], %[[K]], %[[V]]
// CHECK-NEXT: %[[O:.*]] = kvc.attend %[[Q]], %[[C1]] {causal, scale = 0.353553385 : f32}
// CHECK-NEXT: return %[[O]], %[[C1]]
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#id4 = affine_map<(b, h, i, j) -> (b, h, i, j)>
#scalar4 = affine_map<(b, h, i, j) -> ()>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
#none = affine_map<() -> ()>
func.func @decode_clamped_wrapped_position(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
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
  %c15 = arith.constant 15 : index
  %lo = arith.maxsi %widx, %c0 : index
  %at = arith.minsi %lo, %c15 : index
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

// GQA by grouping the queries: Q (B, Hq, S, D) -> (B*Hkv, G*S, D), keys
// (B*Hkv, T, D), linalg.batch_matmul with Kᵀ in its indexing maps. The
// causal mask is added on a (B, Hkv, G, S, T) view of the scores.
// CHECK-LABEL: func.func @prefill_grouped_queries
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x2x8xf32>, %[[K:.*]]: tensor<1x2x2x8xf32>, %[[V:.*]]: tensor<1x2x2x8xf32>, %[[C:.*]]: !kvc.cache<1x2x?x8xf32> {kvc.layer = 0 : i64})
// CHECK-NEXT: %[[C1:.*]] = kvc.append %[[C]], %[[K]], %[[V]]
// CHECK-NEXT: %[[O:.*]] = kvc.attend %[[Q]], %[[C1]] {causal, scale = 0.353553385 : f32} : tensor<1x4x2x8xf32>, !kvc.cache<1x2x?x8xf32> -> tensor<1x4x2x8xf32>
// CHECK-NEXT: return %[[O]], %[[C1]]
#id5 = affine_map<(b, h, g, i, j) -> (b, h, g, i, j)>
func.func @prefill_grouped_queries(%q: tensor<1x4x2x8xf32>, %k: tensor<1x2x2x8xf32>, %v: tensor<1x2x2x8xf32>,
    %past_k: tensor<1x2x5x8xf32>, %past_v: tensor<1x2x5x8xf32>)
    -> (tensor<1x4x2x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x8xf32>) {
  %kc = tensor.concat dim(2) %past_k, %k : (tensor<1x2x5x8xf32>, tensor<1x2x2x8xf32>) -> tensor<1x2x7x8xf32>
  %vc = tensor.concat dim(2) %past_v, %v : (tensor<1x2x5x8xf32>, tensor<1x2x2x8xf32>) -> tensor<1x2x7x8xf32>
  %qg = tensor.expand_shape %q [[0], [1, 2], [3], [4]] output_shape [1, 2, 2, 2, 8] : tensor<1x4x2x8xf32> into tensor<1x2x2x2x8xf32>
  %q3 = tensor.collapse_shape %qg [[0, 1], [2, 3], [4]] : tensor<1x2x2x2x8xf32> into tensor<2x4x8xf32>
  %k3 = tensor.collapse_shape %kc [[0, 1], [2], [3]] : tensor<1x2x7x8xf32> into tensor<2x7x8xf32>
  %v3 = tensor.collapse_shape %vc [[0, 1], [2], [3]] : tensor<1x2x7x8xf32> into tensor<2x7x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<2x4x7xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<2x4x7xf32>) -> tensor<2x4x7xf32>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>]
      ins(%q3, %k3 : tensor<2x4x8xf32>, tensor<2x7x8xf32>) outs(%sz : tensor<2x4x7xf32>) -> tensor<2x4x7xf32>
  %s5 = tensor.expand_shape %s [[0, 1], [2, 3], [4]] output_shape [1, 2, 2, 2, 7] : tensor<2x4x7xf32> into tensor<1x2x2x2x7xf32>
  %e5 = tensor.empty() : tensor<1x2x2x2x7xf32>
  %x5 = linalg.generic {indexing_maps = [#id5, #id5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%s5 : tensor<1x2x2x2x7xf32>) outs(%e5 : tensor<1x2x2x2x7xf32>) {
  ^bb0(%a: f32, %o: f32):
    %c = arith.constant 0.353553385 : f32
    %sc = arith.mulf %a, %c : f32
    %i = linalg.index 3 : index
    %j = linalg.index 4 : index
    %c5 = arith.constant 5 : index
    %qpos = arith.addi %i, %c5 : index
    %future = arith.cmpi sgt, %j, %qpos : index
    %ninf = arith.constant -3.40282347E+38 : f32
    %r = arith.select %future, %ninf, %sc : f32
    linalg.yield %r : f32
  } -> tensor<1x2x2x2x7xf32>
  %x = tensor.collapse_shape %x5 [[0, 1], [2, 3], [4]] : tensor<1x2x2x2x7xf32> into tensor<2x4x7xf32>
  %p = linalg.softmax dimension(2) ins(%x : tensor<2x4x7xf32>) outs(%es : tensor<2x4x7xf32>) -> tensor<2x4x7xf32>
  %eo = tensor.empty() : tensor<2x4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x4x7xf32>, tensor<2x7x8xf32>) outs(%oz : tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %o5 = tensor.expand_shape %o [[0, 1], [2, 3], [4]] output_shape [1, 2, 2, 2, 8] : tensor<2x4x8xf32> into tensor<1x2x2x2x8xf32>
  %o4 = tensor.collapse_shape %o5 [[0], [1, 2], [3], [4]] : tensor<1x2x2x2x8xf32> into tensor<1x4x2x8xf32>
  return %o4, %kc, %vc : tensor<1x4x2x8xf32>, tensor<1x2x7x8xf32>, tensor<1x2x7x8xf32>
}

// -----

// Decode on a BSHD cache: transposes and the repeat_kv broadcast written
// as copying linalg.generic ops, a softmax that multiplies by the
// reciprocal of the sum, bf16.
// CHECK-LABEL: func.func @decode_bshd_generic_copies
// CHECK-SAME: (%[[Q:.*]]: tensor<1x1x4x8xbf16>, %[[K:.*]]: tensor<1x1x2x8xbf16>, %[[V:.*]]: tensor<1x1x2x8xbf16>, %[[C:.*]]: !kvc.cache<1x2x?x8xbf16> {kvc.layer = 0 : i64})
// CHECK: %[[K4:.*]] = linalg.transpose ins(%[[K]] : tensor<1x1x2x8xbf16>) outs(%{{.*}} : tensor<1x2x1x8xbf16>) permutation = [0, 2, 1, 3]
// CHECK: %[[V4:.*]] = linalg.transpose ins(%[[V]] : tensor<1x1x2x8xbf16>) outs(%{{.*}} : tensor<1x2x1x8xbf16>) permutation = [0, 2, 1, 3]
// CHECK: %[[C1:.*]] = kvc.append %[[C]], %[[K4]], %[[V4]] : !kvc.cache<1x2x?x8xbf16>, tensor<1x2x1x8xbf16>, tensor<1x2x1x8xbf16>
// CHECK: %[[Q4:.*]] = tensor.expand_shape %{{.*}} : tensor<4x8xbf16> into tensor<1x4x1x8xbf16>
// CHECK: %[[O:.*]] = kvc.attend %[[Q4]], %[[C1]] {scale = 0.353515625 : f32}
// CHECK: return %{{.*}}, %[[C1]] : tensor<1x1x4x8xbf16>, !kvc.cache<1x2x?x8xbf16>
#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#bshd_to_bhsd = affine_map<(b, h, s, d) -> (b, s, h, d)>
#row4 = affine_map<(b, h, i, j) -> (b, h, i)>
func.func @decode_bshd_generic_copies(%q: tensor<1x1x4x8xbf16>, %k: tensor<1x1x2x8xbf16>, %v: tensor<1x1x2x8xbf16>,
    %past_k: tensor<1x5x2x8xbf16>, %past_v: tensor<1x5x2x8xbf16>)
    -> (tensor<1x1x4x8xbf16>, tensor<1x6x2x8xbf16>, tensor<1x6x2x8xbf16>) {
  %kc = tensor.concat dim(1) %past_k, %k : (tensor<1x5x2x8xbf16>, tensor<1x1x2x8xbf16>) -> tensor<1x6x2x8xbf16>
  %vc = tensor.concat dim(1) %past_v, %v : (tensor<1x5x2x8xbf16>, tensor<1x1x2x8xbf16>) -> tensor<1x6x2x8xbf16>
  %ekv = tensor.empty() : tensor<1x2x6x8xbf16>
  %kt = linalg.generic {indexing_maps = [#bshd_to_bhsd, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%kc : tensor<1x6x2x8xbf16>) outs(%ekv : tensor<1x2x6x8xbf16>) {
  ^bb0(%a: bf16, %o: bf16):
    linalg.yield %a : bf16
  } -> tensor<1x2x6x8xbf16>
  %vt = linalg.generic {indexing_maps = [#bshd_to_bhsd, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%vc : tensor<1x6x2x8xbf16>) outs(%ekv : tensor<1x2x6x8xbf16>) {
  ^bb0(%a: bf16, %o: bf16):
    linalg.yield %a : bf16
  } -> tensor<1x2x6x8xbf16>
  %eq = tensor.empty() : tensor<1x4x1x8xbf16>
  %qt = linalg.generic {indexing_maps = [#bshd_to_bhsd, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%q : tensor<1x1x4x8xbf16>) outs(%eq : tensor<1x4x1x8xbf16>) {
  ^bb0(%a: bf16, %o: bf16):
    linalg.yield %a : bf16
  } -> tensor<1x4x1x8xbf16>
  %e5 = tensor.empty() : tensor<1x2x2x6x8xbf16>
  %kb = linalg.generic {indexing_maps = [affine_map<(b, h, g, t, d) -> (b, h, t, d)>, affine_map<(b, h, g, t, d) -> (b, h, g, t, d)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%kt : tensor<1x2x6x8xbf16>) outs(%e5 : tensor<1x2x2x6x8xbf16>) {
  ^bb0(%a: bf16, %o: bf16):
    linalg.yield %a : bf16
  } -> tensor<1x2x2x6x8xbf16>
  %vb = linalg.generic {indexing_maps = [affine_map<(b, h, g, t, d) -> (b, h, t, d)>, affine_map<(b, h, g, t, d) -> (b, h, g, t, d)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%vt : tensor<1x2x6x8xbf16>) outs(%e5 : tensor<1x2x2x6x8xbf16>) {
  ^bb0(%a: bf16, %o: bf16):
    linalg.yield %a : bf16
  } -> tensor<1x2x2x6x8xbf16>
  %k3 = tensor.collapse_shape %kb [[0, 1, 2], [3], [4]] : tensor<1x2x2x6x8xbf16> into tensor<4x6x8xbf16>
  %v3 = tensor.collapse_shape %vb [[0, 1, 2], [3], [4]] : tensor<1x2x2x6x8xbf16> into tensor<4x6x8xbf16>
  %q3 = tensor.collapse_shape %qt [[0, 1], [2], [3]] : tensor<1x4x1x8xbf16> into tensor<4x1x8xbf16>
  %zero = arith.constant 0.0 : bf16
  %es = tensor.empty() : tensor<4x1x6xbf16>
  %sz = linalg.fill ins(%zero : bf16) outs(%es : tensor<4x1x6xbf16>) -> tensor<4x1x6xbf16>
  %s = linalg.batch_matmul indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>]
      ins(%q3, %k3 : tensor<4x1x8xbf16>, tensor<4x6x8xbf16>) outs(%sz : tensor<4x1x6xbf16>) -> tensor<4x1x6xbf16>
  %s4 = tensor.expand_shape %s [[0, 1], [2], [3]] output_shape [1, 4, 1, 6] : tensor<4x1x6xbf16> into tensor<1x4x1x6xbf16>
  %e4 = tensor.empty() : tensor<1x4x1x6xf32>
  %x = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s4 : tensor<1x4x1x6xbf16>) outs(%e4 : tensor<1x4x1x6xf32>) {
  ^bb0(%a: bf16, %o: f32):
    %c = arith.constant 0.353515625 : bf16
    %sc = arith.mulf %a, %c : bf16
    %f = arith.extf %sc : bf16 to f32
    linalg.yield %f : f32
  } -> tensor<1x4x1x6xf32>
  %er = tensor.empty() : tensor<1x4x1xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mi = linalg.fill ins(%ninf : f32) outs(%er : tensor<1x4x1xf32>) -> tensor<1x4x1xf32>
  %max = linalg.reduce ins(%x : tensor<1x4x1x6xf32>) outs(%mi : tensor<1x4x1xf32>) dimensions = [3]
    (%a: f32, %acc: f32) {
      %m = arith.maxnumf %a, %acc : f32
      linalg.yield %m : f32
    }
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%x, %max : tensor<1x4x1x6xf32>, tensor<1x4x1xf32>) outs(%e4 : tensor<1x4x1x6xf32>) {
  ^bb0(%a: f32, %m: f32, %o: f32):
    %d = arith.subf %a, %m : f32
    %e = math.exp %d : f32
    linalg.yield %e : f32
  } -> tensor<1x4x1x6xf32>
  %fz = arith.constant 0.0 : f32
  %si = linalg.fill ins(%fz : f32) outs(%er : tensor<1x4x1xf32>) -> tensor<1x4x1xf32>
  %sum = linalg.reduce ins(%ex : tensor<1x4x1x6xf32>) outs(%si : tensor<1x4x1xf32>) dimensions = [3]
    (%a: f32, %acc: f32) {
      %r = arith.addf %a, %acc : f32
      linalg.yield %r : f32
    }
  %rcp = linalg.generic {indexing_maps = [affine_map<(b, h, i) -> (b, h, i)>, affine_map<(b, h, i) -> (b, h, i)>], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%sum : tensor<1x4x1xf32>) outs(%er : tensor<1x4x1xf32>) {
  ^bb0(%a: f32, %o: f32):
    %one = arith.constant 1.0 : f32
    %r = arith.divf %one, %a : f32
    linalg.yield %r : f32
  } -> tensor<1x4x1xf32>
  %eb = tensor.empty() : tensor<1x4x1x6xbf16>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%ex, %rcp : tensor<1x4x1x6xf32>, tensor<1x4x1xf32>) outs(%eb : tensor<1x4x1x6xbf16>) {
  ^bb0(%a: f32, %r: f32, %o: bf16):
    %m = arith.mulf %a, %r : f32
    %t = arith.truncf %m : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<1x4x1x6xbf16>
  %p3 = tensor.collapse_shape %p [[0, 1], [2], [3]] : tensor<1x4x1x6xbf16> into tensor<4x1x6xbf16>
  %eo = tensor.empty() : tensor<4x1x8xbf16>
  %oz = linalg.fill ins(%zero : bf16) outs(%eo : tensor<4x1x8xbf16>) -> tensor<4x1x8xbf16>
  %o = linalg.batch_matmul ins(%p3, %v3 : tensor<4x1x6xbf16>, tensor<4x6x8xbf16>) outs(%oz : tensor<4x1x8xbf16>) -> tensor<4x1x8xbf16>
  %o4 = tensor.expand_shape %o [[0, 1, 2], [3], [4]] output_shape [1, 1, 4, 1, 8] : tensor<4x1x8xbf16> into tensor<1x1x4x1x8xbf16>
  %ob = tensor.collapse_shape %o4 [[0], [1], [2, 3], [4]] : tensor<1x1x4x1x8xbf16> into tensor<1x1x4x8xbf16>
  return %ob, %kc, %vc : tensor<1x1x4x8xbf16>, tensor<1x6x2x8xbf16>, tensor<1x6x2x8xbf16>
}

// -----

// Two layers: each gets one cache argument where its past keys were, with
// kvc.layer in the order of the attention sites, and one cache result;
// layer 1's present cache is not returned and so gets no result.
// CHECK-LABEL: func.func @two_layers
// CHECK-SAME: (%[[Q:.*]]: tensor<1x2x1x8xf32>, %[[K:.*]]: tensor<1x2x1x8xf32>, %[[V:.*]]: tensor<1x2x1x8xf32>,
// CHECK-SAME: %[[C1:.*]]: !kvc.cache<1x2x?x8xf32> {kvc.layer = 1 : i64}, %[[C0:.*]]: !kvc.cache<1x2x?x8xf32> {kvc.layer = 0 : i64})
// CHECK-SAME: -> (tensor<1x2x1x8xf32>, !kvc.cache<1x2x?x8xf32>)
// CHECK: %[[A0:.*]] = kvc.append %[[C0]], %[[K]], %[[V]]
// CHECK: %[[O0:.*]] = kvc.attend %[[Q]], %[[A0]]
// CHECK: %[[A1:.*]] = kvc.append %[[C1]], %[[K]], %[[V]]
// CHECK: %[[O1:.*]] = kvc.attend %[[O0]], %[[A1]]
// CHECK: return %[[O1]], %[[A0]] : tensor<1x2x1x8xf32>, !kvc.cache<1x2x?x8xf32>
#q4 = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k4 = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s4 = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#p4 = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v4 = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o4 = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @two_layers(%q: tensor<1x2x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
    %past_k1: tensor<1x2x5x8xf32>, %past_v1: tensor<1x2x5x8xf32>,
    %past_k0: tensor<1x2x5x8xf32>, %past_v0: tensor<1x2x5x8xf32>)
    -> (tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<1x2x1x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  %eo = tensor.empty() : tensor<1x2x1x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x2x1x8xf32>) -> tensor<1x2x1x8xf32>
  %kc0 = tensor.concat dim(2) %past_k0, %k : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %vc0 = tensor.concat dim(2) %past_v0, %v : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %s0 = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %kc0 : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>) outs(%sz : tensor<1x2x1x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x6xf32>
  %p0 = linalg.softmax dimension(3) ins(%s0 : tensor<1x2x1x6xf32>) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  %o0 = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p0, %vc0 : tensor<1x2x1x6xf32>, tensor<1x2x6x8xf32>) outs(%oz : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x8xf32>
  %kc1 = tensor.concat dim(2) %past_k1, %k : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %vc1 = tensor.concat dim(2) %past_v1, %v : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %s1 = linalg.generic {indexing_maps = [#q4, #k4, #s4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%o0, %kc1 : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>) outs(%sz : tensor<1x2x1x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x6xf32>
  %p1 = linalg.softmax dimension(3) ins(%s1 : tensor<1x2x1x6xf32>) outs(%es : tensor<1x2x1x6xf32>) -> tensor<1x2x1x6xf32>
  %o1 = linalg.generic {indexing_maps = [#p4, #v4, #o4], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p1, %vc1 : tensor<1x2x1x6xf32>, tensor<1x2x6x8xf32>) outs(%oz : tensor<1x2x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  } -> tensor<1x2x1x8xf32>
  return %o1, %kc0, %vc0 : tensor<1x2x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>
}
