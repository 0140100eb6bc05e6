// Input of kvc-check-host-buffers.mlir: a slice of the queries given to
// kvc.attend, which bufferization copies into a new buffer on the host.
func.func @sliced(%c: !kvc.cache<1x2x?x64xf16>, %queries: tensor<2x4x1x64xf32>)
    -> tensor<1x4x1x64xf32> {
  // The second sequence's queries.
  %q = tensor.extract_slice %queries[1, 0, 0, 0] [1, 4, 1, 64] [1, 1, 1, 1] : tensor<2x4x1x64xf32> to tensor<1x4x1x64xf32>
  %o = kvc.attend %q, %c : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x4x1x64xf32>
  return %o : tensor<1x4x1x64xf32>
}
