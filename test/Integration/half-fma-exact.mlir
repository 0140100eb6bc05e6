// REQUIRES: kvc-python
// fp16 fma through kvc-cpu-pipeline (kvc-expand-half-fma: f32 code that
// rounds once) run by kvc-run --invoke: every result must be the correctly
// rounded fp16 fma (fma.rn.f16x2 on the GPU), bit for bit, on fresh random
// operands each run: every class of fp16, mixed scales, and sums a hair
// beside the midpoint between two fp16 values, where rounding to f32 first
// and then to fp16 goes wrong (the check counts those cases: there must be
// some, or the test could not tell the two apart; about 33000 a run).

// RUN: %python %S/Inputs/half_fma_check.py make %t.in
// RUN: kvc-run --invoke=fma16 --inputs=%t.in --outputs=%t.out %s > /dev/null
// RUN: %python %S/Inputs/half_fma_check.py check %t.in %t.out | FileCheck %s
// CHECK: 131072 fp16 fmas, 0 differ from the correctly rounded ones
// CHECK: rounded to f32 first, then to fp16: some wrong

#id = affine_map<(i) -> (i)>
func.func @fma16(%a: tensor<131072xf16> {kvc.name = "a"},
                 %b: tensor<131072xf16> {kvc.name = "b"},
                 %c: tensor<131072xf16> {kvc.name = "c"}) -> tensor<131072xf16> {
  %init = tensor.empty() : tensor<131072xf16>
  %r = linalg.generic {indexing_maps = [#id, #id, #id, #id],
                       iterator_types = ["parallel"]}
      ins(%a, %b, %c : tensor<131072xf16>, tensor<131072xf16>, tensor<131072xf16>)
      outs(%init : tensor<131072xf16>) {
  ^bb0(%x: f16, %y: f16, %z: f16, %out: f16):
    // As the dequantization of the tensor-core passes' CPU mirrors writes
    // it (HalfPairs.cpp): llvm.intr.fma, which kvc-expand-half-fma rewrites.
    %f = llvm.intr.fma(%x, %y, %z) : (f16, f16, f16) -> f16
    linalg.yield %f : f16
  } -> tensor<131072xf16>
  return %r : tensor<131072xf16>
}
