// RUN: kvc-opt %s --kvc-lower-to-gpu="key-product=mma value-product=mma mma-codes=normal" | FileCheck %s
// RUN: kvc-opt %s --kvc-lower-to-gpu="key-product=mma value-product=mma" | FileCheck %s --check-prefix=SUBNORMAL

// mma-codes=normal: the tensor-core passes read the codes whose scales they
// fold as fp16 normals, for tensor cores that would flush subnormal
// inputs. Each pair is ORed into the mantissa of 2^(10 - bit) by one lop3
// (mask 0x00030003 << bit, exponent 25 - bit: 0x6400 is 1024.0 at bit 0,
// 0x5C00 256.0 at bit 2, ...) and that power subtracted: the codes
// themselves, which weigh 1. So no sum is scaled back: each key score is
// its tile sum times the scores' factor (scale 1/8 times the queries' 4:
// 0.5, not 0.5 * 2^24), the residual units' sums are added unweighed, and
// the value pass's interior sums go to the edge loop as they are. The
// softmax splits the folded weights w * scale times 2^2 * 2^6 (2^6 more
// than the default reads: their lo parts stay fp16 normals down to w *
// range ~ 2^-9), which the value pass divides out with the zeros' sums.

#wholehead = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                           value = #kvc.quant<bits = 2, axis = token, group = 64>,
                           residual = 64>

// CHECK-LABEL: gpu.func @attend0_split0
// Keys, an edge unit in pages: a lane's word, each pair ORed and the power
// subtracted (no plain AND of the codes).
// CHECK: %[[WORD:.*]] = arith.shrui %{{.*}}, %{{.*}} : i32
// CHECK-NEXT: %[[MASK0:.*]] = arith.constant 196611 : i32
// CHECK-NEXT: %[[MAGIC0:.*]] = arith.constant 1677747200 : i32
// CHECK-NEXT: %[[OR0:.*]] = llvm.inline_asm "lop3.b32 $0, $1, $2, $3, 0xEA;", "=r,r,n,n" %[[WORD]], %[[MASK0]], %[[MAGIC0]]
// CHECK-NEXT: %[[BIASED0:.*]] = llvm.bitcast %[[OR0]] : i32 to vector<2xf16>
// CHECK-NEXT: %[[POWER0:.*]] = arith.constant dense<1.024000e+03> : vector<2xf16>
// CHECK-NEXT: %[[CODES0:.*]] = arith.subf %[[BIASED0]], %[[POWER0]] : vector<2xf16>
// CHECK: llvm.inline_asm "lop3.b32 $0, $1, $2, $3, 0xEA;", "=r,r,n,n" %[[WORD]], %c786444_i32, %c1543527424_i32
// CHECK-NEXT: llvm.bitcast
// CHECK-NEXT: arith.constant dense<2.560000e+02> : vector<2xf16>
// CHECK-NEXT: arith.subf
// CHECK: vector.insert %[[CODES0]], %{{.*}} [0] : vector<2xf16> into vector<4x2xf16>
// CHECK-NOT: arith.andi %{{.*}}, %c196611_i32 : i32
// Residual units: their sums added as they are.
// CHECK: } else {
// CHECK-COUNT-8: nvgpu.mma.sync
// CHECK-NOT: arith.mulf
// CHECK: arith.addf %{{.*}}, %{{.*}} : vector<2x2xf32>
// CHECK-NEXT: arith.addf %{{.*}}, %{{.*}} : vector<2x2xf32>
// CHECK-NEXT: scf.yield
// The scores: sum times 0.5 plus the zeros' sum.
// CHECK: %[[DOT:.*]] = vector.extract %{{.*}}#0[0, 0] : f32 from vector<2x2xf32>
// CHECK-NEXT: %[[FACTOR:.*]] = arith.constant 5.000000e-01 : f32
// CHECK-NEXT: llvm.intr.fma(%[[DOT]], %[[FACTOR]], %{{.*}}) : (f32, f32, f32) -> f32
// The softmax: a token's scale times 2^8, each weight times that.
// CHECK: %[[SCALE:.*]] = arith.extf %{{.*}} : f16 to f32
// CHECK: %[[POWER:.*]] = arith.constant 2.560000e+02 : f32
// CHECK-NEXT: %[[FACTOR8:.*]] = arith.mulf %[[SCALE]], %[[POWER]] : f32
// CHECK: %[[WEIGHT:.*]] = math.exp
// CHECK-NEXT: arith.mulf %[[WEIGHT]], %[[FACTOR8]] : f32
// Values, the interior loop: the two tokens' halves by PRMT, the pairs
// ORed and the power subtracted, into mma.sync m16n8k8.
// CHECK: %[[INTERIOR:.*]]:4 = scf.for %{{.*}} -> (vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>, vector<2x2xf32>) {
// CHECK: nvvm.prmt <default> %c21520_i32
// CHECK: llvm.inline_asm "lop3.b32 $0, $1, $2, $3, 0xEA;", "=r,r,n,n" %{{.*}}, %c196611_i32{{.*}}, %c1677747200_i32
// CHECK-NEXT: llvm.bitcast
// CHECK-NEXT: arith.constant dense<1.024000e+03> : vector<2xf16>
// CHECK-NEXT: arith.subf
// CHECK: nvgpu.mma.sync({{.*}}) {mmaShape = [16, 8, 8]}
// Its sums straight into the edge loop, not scaled back.
// CHECK: scf.for %{{.*}} iter_args(%{{.*}} = %[[INTERIOR]]#0, %{{.*}} = %[[INTERIOR]]#1, %{{.*}} = %[[INTERIOR]]#2, %{{.*}} = %[[INTERIOR]]#3)
// The outputs: the sums divided by 2^8 with the zeros' sums added.
// CHECK: %[[UNSCALE:.*]] = arith.constant 3.906250e-03 : f32
// CHECK-NEXT: llvm.intr.fma(%{{.*}}, %[[UNSCALE]], %{{.*}}) : (f32, f32, f32) -> f32

// The default reads subnormals: a plain AND, no power, and the sums
// scaled back (0.5 * 2^24 for tile 0's rows g; 2^24 for the values' channel
// tile 0), and the folded weights carry 2^2 only.
// SUBNORMAL-LABEL: gpu.func @attend0_split0
// SUBNORMAL-NOT: lop3
// SUBNORMAL: arith.andi %{{.*}}, %c196611_i32 : i32
// SUBNORMAL: arith.constant 0x4B000000 : f32
// SUBNORMAL: %[[POWER:.*]] = arith.constant 4.000000e+00 : f32
// SUBNORMAL-NEXT: arith.mulf %{{.*}}, %[[POWER]] : f32
// SUBNORMAL: arith.constant dense<0x4B800000> : vector<2x2xf32>
// SUBNORMAL: %[[UNSCALE:.*]] = arith.constant 2.500000e-01 : f32
// SUBNORMAL-NEXT: llvm.intr.fma(%{{.*}}, %[[UNSCALE]], %{{.*}}) : (f32, f32, f32) -> f32
func.func @whole_head_values(%q: tensor<2x4x1x64xf32>, %cache: !kvc.cache<2x2x?x64xf16, #wholehead>) -> tensor<2x4x1x64xf32> {
  %o = kvc.attend %q, %cache : tensor<2x4x1x64xf32>, !kvc.cache<2x2x?x64xf16, #wholehead> -> tensor<2x4x1x64xf32>
  return %o : tensor<2x4x1x64xf32>
}
