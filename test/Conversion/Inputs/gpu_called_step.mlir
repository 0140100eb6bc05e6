// Input of kvc-check-host-buffers.mlir: a function that calls a compiled
// step twice, the first call's result feeding the second. The caller's
// buffer for that intermediate result would be a host allocation.
func.func @step(%c: !kvc.cache<1x2x?x64xf16>, %q: tensor<1x4x1x64xf32>) -> tensor<1x4x1x64xf32> {
  %o = kvc.attend %q, %c : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x4x1x64xf32>
  return %o : tensor<1x4x1x64xf32>
}
func.func @two_steps(%c: !kvc.cache<1x2x?x64xf16>, %q: tensor<1x4x1x64xf32>) -> tensor<1x4x1x64xf32> {
  %o = func.call @step(%c, %q) : (!kvc.cache<1x2x?x64xf16>, tensor<1x4x1x64xf32>) -> tensor<1x4x1x64xf32>
  %o2 = func.call @step(%c, %o) : (!kvc.cache<1x2x?x64xf16>, tensor<1x4x1x64xf32>) -> tensor<1x4x1x64xf32>
  return %o2 : tensor<1x4x1x64xf32>
}
