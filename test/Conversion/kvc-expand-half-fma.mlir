// RUN: kvc-opt %s --kvc-expand-half-fma | FileCheck %s
// RUN: kvc-opt %s --kvc-expand-half-fma | mlir-translate --mlir-to-llvmir | llc -O2 -mtriple=x86_64-unknown-linux-gnu -mattr=+f16c | FileCheck %s --check-prefix=X86

// fp16 fmas become f32 code that rounds once (the sum rounded to odd, then
// one fptrunc); that it is exact is tested by
// test/Integration/half-fma-exact.mlir.

// CHECK-LABEL: llvm.func @pair
// CHECK-SAME: (%[[A:.*]]: vector<2xf16>, %[[B:.*]]: vector<2xf16>, %[[C:.*]]: vector<2xf16>)
// CHECK-NOT: llvm.intr.fma
// CHECK-DAG: %[[AW:.*]] = llvm.fpext %[[A]] : vector<2xf16> to vector<2xf32>
// CHECK-DAG: %[[BW:.*]] = llvm.fpext %[[B]] : vector<2xf16> to vector<2xf32>
// CHECK-DAG: %[[CW:.*]] = llvm.fpext %[[C]] : vector<2xf16> to vector<2xf32>
// CHECK: %[[P:.*]] = llvm.fmul %[[AW]], %[[BW]] : vector<2xf32>
// CHECK: %[[S:.*]] = llvm.fadd %[[P]], %[[CW]] : vector<2xf32>
// TwoSum's error of the sum.
// CHECK: %[[CP:.*]] = llvm.fsub %[[S]], %[[P]]
// CHECK: %[[PP:.*]] = llvm.fsub %[[S]], %[[CP]]
// CHECK: %[[PE:.*]] = llvm.fsub %[[P]], %[[PP]]
// CHECK: %[[CE:.*]] = llvm.fsub %[[CW]], %[[CP]]
// CHECK: %[[E:.*]] = llvm.fadd %[[PE]], %[[CE]]
// Round to odd: an inexact, even sum moves one ulp towards the exact value.
// CHECK: %[[SB:.*]] = llvm.bitcast %[[S]] : vector<2xf32> to vector<2xi32>
// CHECK: %[[EB:.*]] = llvm.bitcast %[[E]] : vector<2xf32> to vector<2xi32>
// CHECK: %[[INEXACT:.*]] = llvm.fcmp "one" %[[E]], %{{.*}} : vector<2xf32>
// CHECK: %[[LOW:.*]] = llvm.and %[[SB]], %{{.*}} : vector<2xi32>
// CHECK: %[[EVEN:.*]] = llvm.icmp "eq" %[[LOW]]
// CHECK: %[[SIGNS:.*]] = llvm.xor %[[SB]], %[[EB]]
// CHECK: %[[SAME:.*]] = llvm.icmp "sge" %[[SIGNS]]
// CHECK: %[[STEP:.*]] = llvm.select %[[SAME]]
// CHECK: %[[MOVED:.*]] = llvm.add %[[SB]], %[[STEP]]
// CHECK: %[[TOODD:.*]] = llvm.and %[[INEXACT]], %[[EVEN]] : vector<2xi1>
// CHECK: %[[ODDB:.*]] = llvm.select %[[TOODD]], %[[MOVED]], %[[SB]]
// CHECK: %[[ODD:.*]] = llvm.bitcast %[[ODDB]] : vector<2xi32> to vector<2xf32>
// CHECK: %[[R:.*]] = llvm.fptrunc %[[ODD]] : vector<2xf32> to vector<2xf16>
// CHECK: llvm.return %[[R]]
// With F16C: conversions, no library calls (LLVM's own fp16 fma calls
// __truncdfhf2 an element).
// X86-LABEL: pair:
// X86-NOT: call
// X86: vcvtph2ps
// X86-NOT: call
// X86: vcvtps2ph
// X86-NOT: call
// X86: ret
llvm.func @pair(%a: vector<2xf16>, %b: vector<2xf16>, %c: vector<2xf16>) -> vector<2xf16> {
  %r = llvm.intr.fma(%a, %b, %c) : (vector<2xf16>, vector<2xf16>, vector<2xf16>) -> vector<2xf16>
  llvm.return %r : vector<2xf16>
}

// CHECK-LABEL: llvm.func @scalar
// CHECK-NOT: llvm.intr.fma
// CHECK: llvm.fpext %{{.*}} : f16 to f32
// CHECK: llvm.fcmp "one" %{{.*}}, %{{.*}} : f32
// CHECK: llvm.fptrunc %{{.*}} : f32 to f16
// X86-LABEL: scalar:
// X86-NOT: call
// X86: ret
llvm.func @scalar(%a: f16, %b: f16, %c: f16) -> f16 {
  %r = llvm.intr.fma(%a, %b, %c) : (f16, f16, f16) -> f16
  llvm.return %r : f16
}

// Other types keep their fma.
// CHECK-LABEL: llvm.func @wide
// CHECK-NEXT: %[[R:.*]] = llvm.intr.fma(%{{.*}}, %{{.*}}, %{{.*}}) : (vector<2xf32>, vector<2xf32>, vector<2xf32>) -> vector<2xf32>
// CHECK-NEXT: %[[D:.*]] = llvm.intr.fma(%{{.*}}, %{{.*}}, %{{.*}}) : (f64, f64, f64) -> f64
// CHECK-NOT: fptrunc
llvm.func @wide(%a: vector<2xf32>, %b: vector<2xf32>, %c: vector<2xf32>, %d: f64) -> vector<2xf32> {
  %r = llvm.intr.fma(%a, %b, %c) : (vector<2xf32>, vector<2xf32>, vector<2xf32>) -> vector<2xf32>
  %s = llvm.intr.fma(%d, %d, %d) : (f64, f64, f64) -> f64
  llvm.return %r : vector<2xf32>
}
