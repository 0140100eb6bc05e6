// RUN: kvc-opt %s -split-input-file --kvc-lower-to-gpu | FileCheck %s

// A mask operand (Hugging Face decoders' padding mask, batch x 1 x 1 x
// tokens, its size the call's) goes to the split kernel as its last
// argument. The kernel adds it to each score before the softmax's maxima,
// storing the sum back for the weights; a sequence whose token count is not
// the mask's takes NaN instead (NaN outputs, as on the CPU; no read past
// the mask).

#kivi2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 128>
// CHECK-LABEL: func.func @padding_mask
// CHECK-SAME: %[[MASK:[^:]*]]: tensor<2x1x1x?xf32>)
// CHECK: %[[BUFFER:.*]] = bufferization.to_buffer %[[MASK]] read_only : tensor<2x1x1x?xf32> to memref<2x1x1x?xf32>
// CHECK: gpu.launch_func async {{.*}} @kvc_kernels::@attend0_split0 {{.*}} args({{.*}}, %[[BUFFER]] : memref<2x1x1x?xf32>)
// CHECK: gpu.launch_func async {{.*}} @kvc_kernels::@attend0_combine
// CHECK-LABEL: gpu.func @attend0_split0
// CHECK-SAME: %[[KMASK:[^:]*]]: memref<2x1x1x?xf32>) workgroup
// The sequence's token count (record field 24) against the mask's, then
// the maxima's loop: score + mask[batch, 0, 0, token] (NaN if the counts
// differ), stored back.
// CHECK: %[[MTOKENS:.*]] = memref.dim %[[KMASK]], %c3
// CHECK: %[[FITS:.*]] = arith.cmpi eq, %{{.*}}, %[[MTOKENS]] : index
// CHECK: scf.for %[[LOCAL:.*]] = %{{.*}} to %{{.*}} step %c128
// CHECK: %[[SCORE:.*]] = memref.load %[[SCORES:.*]][%{{.*}}, %[[LOCAL]]] : memref<4x512xf32, #gpu.address_space<workgroup>>
// CHECK: %[[TOKEN:.*]] = arith.addi %{{.*}}, %[[LOCAL]] : index
// CHECK: %[[BIAS:.*]] = scf.if %[[FITS]] -> (f32)
// CHECK: %[[LOADED:.*]] = memref.load %[[KMASK]][%block_id_z, %{{.*}}, %{{.*}}, %[[TOKEN]]] : memref<2x1x1x?xf32>
// CHECK: scf.yield %[[LOADED]] : f32
// CHECK: } else {
// CHECK: %[[NAN:.*]] = arith.constant 0x7FC00000 : f32
// CHECK: scf.yield %[[NAN]] : f32
// CHECK: %[[SUM:.*]] = arith.addf %[[SCORE]], %[[BIAS]] : f32
// CHECK: memref.store %[[SUM]], %[[SCORES]][%{{.*}}, %[[LOCAL]]]
// CHECK: arith.maximumf %{{.*}}, %[[SUM]] : f32
// A split whose scores are all -inf (a -inf mask over all its tokens: left
// padding) weighs them exp(score - 0), not exp(-inf - -inf) = NaN.
// CHECK: %[[NEGINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK: %[[EMPTY:.*]] = arith.cmpf oeq, %[[MAX:.*]], %[[NEGINF]] : f32
// CHECK: %[[SHIFT:.*]] = arith.select %[[EMPTY]], %{{.*}}, %[[MAX]] : f32
// CHECK: scf.for
// CHECK: %[[MASKED:.*]] = memref.load %[[SCORES]]
// CHECK: %[[EXPONENT:.*]] = arith.subf %[[MASKED]], %[[SHIFT]] : f32
// CHECK: math.exp %[[EXPONENT]] : f32
func.func @padding_mask(%cache: !kvc.cache<2x2x?x64xf16, #kivi2>, %q: tensor<2x8x1x64xf32>, %m: tensor<2x1x1x?xf32>) -> tensor<2x8x1x64xf32> {
  %o = kvc.attend %q, %cache mask(%m : tensor<2x1x1x?xf32>) {causal} : tensor<2x8x1x64xf32>, !kvc.cache<2x2x?x64xf16, #kivi2> -> tensor<2x8x1x64xf32>
  return %o : tensor<2x8x1x64xf32>
}

// -----
// One mask row a query head (f16): the KV head's query heads read rows
// kvHead * 4 + j.
#kivi2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 128>
// CHECK-LABEL: gpu.func @attend0_split0
// CHECK-SAME: %[[KMASK:[^:]*]]: memref<1x8x1x?xf16>) workgroup
// CHECK: %[[KVHEAD:.*]] = arith.addi %block_id_y, %{{.*}} : index
// CHECK: %[[FIRST:.*]] = arith.muli %[[KVHEAD]], %c4 : index
// CHECK: %[[HEAD:.*]] = arith.addi %[[FIRST]], %c1{{.*}} : index
// CHECK: %[[BIAS:.*]] = memref.load %[[KMASK]][%block_id_z, %[[HEAD]], %{{.*}}, %{{.*}}] : memref<1x8x1x?xf16>
// CHECK: arith.extf %[[BIAS]] : f16 to f32
func.func @per_head_mask(%cache: !kvc.cache<1x2x?x64xf16, #kivi2>, %q: tensor<1x8x1x64xf32>, %m: tensor<1x8x1x?xf16>) -> tensor<1x8x1x64xf32> {
  %o = kvc.attend %q, %cache mask(%m : tensor<1x8x1x?xf16>) : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #kivi2> -> tensor<1x8x1x64xf32>
  return %o : tensor<1x8x1x64xf32>
}
