// kvc-run refuses what it cannot check, with a located error and exit 1.
// RUN: not kvc-run %s --entry=two_attends 2>&1 | FileCheck %s --check-prefix=TWO
// TWO: kvc-run-errors.mlir:[[# @LINE + 11]]:1: error: kvc-run: expects exactly one kvc.attend, without a mask operand
// RUN: not kvc-run %s --entry=missing 2>&1 | FileCheck %s --check-prefix=MISSING
// MISSING: kvc-run: error: no function @missing
// RUN: not kvc-run %s --entry=two_attends --spec="key=q7:channel:g32" 2>&1 | FileCheck %s --check-prefix=SPEC
// SPEC: error: kvc-decouple-compression: bad spec: key: invalid encoding 'q7:channel:g32': bits must be 2, 3, 4 or 8 (got 7)
// The reads select the GPU passes too; others are refused, not ignored.
// RUN: not kvc-run %s --entry=one_attend --gpu-emulator --key-reads=bogus 2>&1 | FileCheck %s --check-prefix=KEYREADS
// KEYREADS: error: kvc-gpu-pipeline: key-reads must be `rows` or `parts`, not `bogus`
// RUN: not kvc-run %s --entry=one_attend --gpu-emulator --value-reads=f64 2>&1 | FileCheck %s --check-prefix=VALUEREADS
// VALUEREADS: error: kvc-gpu-pipeline: value-reads must be `f32` or `f16`, not `f64`

func.func @two_attends(%cache: !kvc.cache<1x2x?x64xf32>, %q: tensor<1x2x1x64xf32>,
                       %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x1x64xf32>)
    -> (tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x64xf32>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o = kvc.attend %q, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf32> -> tensor<1x2x1x64xf32>
  %o2 = kvc.attend %o, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf32> -> tensor<1x2x1x64xf32>
  return %o2, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf32>
}

func.func @one_attend(%cache: !kvc.cache<1x2x?x64xf32>, %q: tensor<1x2x1x64xf32>,
                      %k: tensor<1x2x1x64xf32>, %v: tensor<1x2x1x64xf32>)
    -> (tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf32>) {
  %c = kvc.append %cache, %k, %v : !kvc.cache<1x2x?x64xf32>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o = kvc.attend %q, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf32> -> tensor<1x2x1x64xf32>
  return %o, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf32>
}
